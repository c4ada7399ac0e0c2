#!/usr/bin/env node
// Entry point of the `notellm2` command: runs the built CLI (npm install builds dist/ through `prepare`).
require('../dist/cli.js').main(process.argv).catch((err) => {
  console.error(`notellm2: ${err && err.message ? err.message : err}`);
  if (process.env.NOTELLM2_DEBUG) console.error(err);
  process.exit(1);
});
