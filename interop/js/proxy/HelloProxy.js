'use strict';
// Client proxy for tars/hello.tars, in the shape tars2node generates.
//
//   module TestApp { interface Hello { string hello(int no, string name); }; };

const TarsStream = require('@tars/stream');
const TarsError = require('@tars/rpc').error;

const TestApp = {};
module.exports.TestApp = TestApp;

TestApp.HelloProxy = function () {
  this._name = undefined;
  this._worker = undefined;
};

TestApp.HelloProxy.prototype.setTimeout = function (iTimeout) { this._worker.timeout = iTimeout; };
TestApp.HelloProxy.prototype.getTimeout = function () { return this._worker.timeout; };
TestApp.HelloProxy.prototype.setVersion = function (iVersion) { this._worker.version = iVersion; };
TestApp.HelloProxy.prototype.getVersion = function () { return this._worker.version; };

function makeError(data, message, code) {
  const response = { costtime: data.request.costtime, error: { code: code === undefined ? data.error.code : code, message } };
  return { request: data.request, response };
}

// hello: no@1, name@2; the string result at tag 0.
const helloIE = function (no, name) {
  const os = new TarsStream.TarsOutputStream();
  os.writeInt32(1, no);
  os.writeString(2, name);
  return os.getBinBuffer();
};
const helloID = function (data) {
  try {
    const is = new TarsStream.TarsInputStream(data.response.sBuffer);
    return {
      request: data.request,
      response: { costtime: data.request.costtime, return: is.readString(0, true, ''), arguments: {} },
    };
  } catch (e) {
    throw makeError(data, e.message, TarsError.CLIENT.DECODE_ERROR);
  }
};
const helloPE = function (no, name, version) {
  const tup = new TarsStream.UniAttribute();
  tup.tupVersion = version;
  tup.writeInt32('no', no);
  tup.writeString('name', name);
  return tup;
};
const helloPD = function (data) {
  try {
    const tup = data.response.tup;
    return {
      request: data.request,
      response: { costtime: data.request.costtime, return: tup.readString(''), arguments: {} },
    };
  } catch (e) {
    throw makeError(data, e.message, TarsError.CLIENT.DECODE_ERROR);
  }
};
const helloER = function (data) {
  throw makeError(data, 'Call Hello::hello failed: ' + (data.error && data.error.message));
};

TestApp.HelloProxy.prototype.hello = function (no, name) {
  const version = this._worker.version;
  const property = arguments.length > 2 ? arguments[arguments.length - 1] : undefined;
  if (version === TarsStream.Tup.TUP_SIMPLE || version === TarsStream.Tup.TUP_COMPLEX) {
    return this._worker.tup_invoke('hello', helloPE(no, name, version), property).then(helloPD, helloER);
  }
  return this._worker.tars_invoke('hello', helloIE(no, name), property).then(helloID, helloER);
};
