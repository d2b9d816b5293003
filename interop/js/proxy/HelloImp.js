'use strict';
// Server side of tars/hello.tars for @tars/rpc, in the shape tars2node
// generates: onDispatch decodes TARS or TUP arguments by the request's
// version and gives the servant a current.sendResponse that encodes the same
// way. The handler (no, name) => string is set per server.

const TarsStream = require('@tars/stream');
const TarsError = require('@tars/rpc').error;

function isTup(version) {
  return version === TarsStream.Tup.TUP_SIMPLE || version === TarsStream.Tup.TUP_COMPLEX;
}

// helloImp returns a servant class whose hello calls handler(no, name, current).
function helloImp(handler) {
  const Imp = function () {};
  Imp.prototype.initialize = function () {};
  Imp.prototype.onDispatch = function (current, funcName, binBuffer) {
    const version = current.getRequestVersion();
    const respond = (write) => {
      if (isTup(version)) {
        const tup = new TarsStream.UniAttribute();
        tup.tupVersion = version;
        write.tup(tup);
        current.doResponse(tup.encode());
      } else {
        const os = new TarsStream.TarsOutputStream();
        write.tars(os);
        current.doResponse(os.getBinBuffer());
      }
    };
    switch (funcName) {
      case 'tars_ping':
        respond({ tup: (t) => t.writeInt32('', 0), tars: (os) => os.writeInt32(0, 0) });
        return TarsError.SUCCESS;
      case 'hello': {
        let no, name;
        if (isTup(version)) {
          const tup = new TarsStream.UniAttribute();
          tup.tupVersion = version;
          tup.decode(binBuffer);
          no = tup.readInt32('no');
          name = tup.readString('name');
        } else {
          const is = new TarsStream.TarsInputStream(binBuffer);
          no = is.readInt32(1, true);
          name = is.readString(2, true);
        }
        const ret = handler(no, name, current);
        respond({ tup: (t) => t.writeString('', ret), tars: (os) => os.writeString(0, ret) });
        return TarsError.SUCCESS;
      }
    }
    return TarsError.SERVER.FUNC_NOT_FOUND;
  };
  return Imp;
}

module.exports = { helloImp };
