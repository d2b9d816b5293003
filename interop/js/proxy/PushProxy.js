'use strict';
// Client proxy for tars/Push.tars, written by hand in the shape tars2node
// generates: one encoder/decoder pair per function for TARS (version 1) and
// one for TUP (versions 2 and 3), chosen by the worker's protocol version.
//
//   module TestApp { interface Push {
//     int pushByRoom(string roomNum, string message, out int delivered);
//     int pushAll(string message, out int delivered);
//   }; };

const TarsStream = require('@tars/stream');
const TarsError = require('@tars/rpc').error;

const TestApp = {};
module.exports.TestApp = TestApp;

TestApp.PushProxy = function () {
  this._name = undefined;
  this._worker = undefined;
};

TestApp.PushProxy.prototype.setTimeout = function (iTimeout) { this._worker.timeout = iTimeout; };
TestApp.PushProxy.prototype.getTimeout = function () { return this._worker.timeout; };
TestApp.PushProxy.prototype.setVersion = function (iVersion) { this._worker.version = iVersion; };
TestApp.PushProxy.prototype.getVersion = function () { return this._worker.version; };

function makeError(data, message, code) {
  const response = { costtime: data.request.costtime, error: { code: code === undefined ? data.error.code : code, message } };
  return { request: data.request, response };
}

function isTup(version) {
  return version === TarsStream.Tup.TUP_SIMPLE || version === TarsStream.Tup.TUP_COMPLEX;
}

// pushByRoom: roomNum@1, message@2, out delivered@3.
const pushByRoomIE = function (roomNum, message) {
  const os = new TarsStream.TarsOutputStream();
  os.writeString(1, roomNum);
  os.writeString(2, message);
  return os.getBinBuffer();
};
const pushByRoomID = function (data) {
  try {
    const is = new TarsStream.TarsInputStream(data.response.sBuffer);
    return {
      request: data.request,
      response: {
        costtime: data.request.costtime,
        return: is.readInt32(0, true, 0),
        arguments: { delivered: is.readInt32(3, true, 0) },
      },
    };
  } catch (e) {
    throw makeError(data, e.message, TarsError.CLIENT.DECODE_ERROR);
  }
};
const pushByRoomPE = function (roomNum, message, version) {
  const tup = new TarsStream.UniAttribute();
  tup.tupVersion = version;
  tup.writeString('roomNum', roomNum);
  tup.writeString('message', message);
  return tup;
};
const pushByRoomPD = function (data) {
  try {
    const tup = data.response.tup;
    return {
      request: data.request,
      response: {
        costtime: data.request.costtime,
        return: tup.readInt32(''), // no default: a missing return value is an error
        arguments: { delivered: tup.readInt32('delivered') },
      },
    };
  } catch (e) {
    throw makeError(data, e.message, TarsError.CLIENT.DECODE_ERROR);
  }
};
const pushByRoomER = function (data) {
  throw makeError(data, 'Call Push::pushByRoom failed: ' + (data.error && data.error.message));
};

TestApp.PushProxy.prototype.pushByRoom = function (roomNum, message) {
  const version = this._worker.version;
  const property = arguments.length > 2 ? arguments[arguments.length - 1] : undefined;
  if (isTup(version)) {
    return this._worker.tup_invoke('pushByRoom', pushByRoomPE(roomNum, message, version), property)
      .then(pushByRoomPD, pushByRoomER);
  }
  return this._worker.tars_invoke('pushByRoom', pushByRoomIE(roomNum, message), property)
    .then(pushByRoomID, pushByRoomER);
};

// pushAll: message@1, out delivered@2.
const pushAllIE = function (message) {
  const os = new TarsStream.TarsOutputStream();
  os.writeString(1, message);
  return os.getBinBuffer();
};
const pushAllID = function (data) {
  try {
    const is = new TarsStream.TarsInputStream(data.response.sBuffer);
    return {
      request: data.request,
      response: {
        costtime: data.request.costtime,
        return: is.readInt32(0, true, 0),
        arguments: { delivered: is.readInt32(2, true, 0) },
      },
    };
  } catch (e) {
    throw makeError(data, e.message, TarsError.CLIENT.DECODE_ERROR);
  }
};
const pushAllPE = function (message, version) {
  const tup = new TarsStream.UniAttribute();
  tup.tupVersion = version;
  tup.writeString('message', message);
  return tup;
};
const pushAllPD = function (data) {
  try {
    const tup = data.response.tup;
    return {
      request: data.request,
      response: {
        costtime: data.request.costtime,
        return: tup.readInt32(''), // no default: a missing return value is an error
        arguments: { delivered: tup.readInt32('delivered') },
      },
    };
  } catch (e) {
    throw makeError(data, e.message, TarsError.CLIENT.DECODE_ERROR);
  }
};
const pushAllER = function (data) {
  throw makeError(data, 'Call Push::pushAll failed: ' + (data.error && data.error.message));
};

TestApp.PushProxy.prototype.pushAll = function (message) {
  const version = this._worker.version;
  const property = arguments.length > 1 ? arguments[arguments.length - 1] : undefined;
  if (isTup(version)) {
    return this._worker.tup_invoke('pushAll', pushAllPE(message, version), property)
      .then(pushAllPD, pushAllER);
  }
  return this._worker.tars_invoke('pushAll', pushAllIE(message), property)
    .then(pushAllID, pushAllER);
};
