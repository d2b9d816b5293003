'use strict';
// Helpers around @tars/rpc's client.

// call awaits a proxy call and returns its response, or throws an Error
// that says what failed (Tars.js rejects with a plain object).
async function call(p) {
  try {
    return (await p).response;
  } catch (e) {
    const err = e && e.response && e.response.error;
    throw new Error(err ? `rpc failed: code ${err.code}: ${err.message}` : `rpc failed: ${(e && e.stack) || e}`);
  }
}

// closeNow closes a communicator's connections at once. destroy() alone
// keeps them open for the call timeout (Tars.js lets late replies land), so
// a server stopped meanwhile would still talk to them.
async function closeNow(comm) {
  for (const worker of Object.values(comm._workers)) worker.timeout = 0;
  comm.destroy();
  // The close timers were set first with the shortest delay: they run before this one.
  await new Promise((resolve) => setTimeout(resolve, 1));
}

module.exports = { call, closeNow };
