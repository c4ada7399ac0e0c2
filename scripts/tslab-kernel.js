#!/usr/bin/env node
// The tslab kernel as `npm run notebook` and the notebook tests register it: tslab itself, plus
// the `execute_input` message the Jupyter messaging protocol asks every kernel to broadcast
// before running a cell ("the code being executed, with its execution_count"). tslab 1.0 sends
// the count only in its execute_reply; a live front end reads it there, but headless execution
// (nbconvert / nbclient, what CI and most "run this notebook" scripts use) takes a cell's count
// from iopub messages only, so without this every saved cell reads `[ ]:` as if never run.
// Arguments are tslab's own (`kernel --config-path <file> [--js]`).
'use strict';
const { dirname, join } = require('node:path');

const tslabDir = dirname(require.resolve('tslab/package.json', { paths: [join(__dirname, '..')] }));
const { JupyterHandlerImpl, ZmqServer } = require(join(tslabDir, 'dist', 'jupyter.js'));

if (typeof ZmqServer?.prototype?.handleExecute !== 'function' || typeof JupyterHandlerImpl?.prototype?.handleExecuteImpl !== 'function') {
  console.error('tslab-kernel: this tslab has no ZmqServer.handleExecute / JupyterHandlerImpl.handleExecuteImpl; execution counts are not broadcast');
} else {
  // execute_request content → a function that broadcasts execute_input for it.
  const announcers = new WeakMap();
  const handleExecute = ZmqServer.prototype.handleExecute;
  ZmqServer.prototype.handleExecute = function (sock, msg) {
    announcers.set(msg.content, (count) => {
      const input = msg.createReply();
      input.header.msg_type = 'execute_input';
      input.content = { code: msg.content.code, execution_count: count };
      input.signAndSend(this.connInfo.key, this.iopub);
    });
    return handleExecute.call(this, sock, msg);
  };
  // Runs when the cell's turn in tslab's queue comes; tslab numbers it `++execCount` right after.
  const handleExecuteImpl = JupyterHandlerImpl.prototype.handleExecuteImpl;
  JupyterHandlerImpl.prototype.handleExecuteImpl = function (req, ...rest) {
    const announce = announcers.get(req);
    if (announce && !req.silent) announce(this.execCount + 1);
    return handleExecuteImpl.call(this, req, ...rest);
  };
}

require(join(tslabDir, 'dist', 'main.js')).main();
