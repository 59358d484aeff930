'use strict';

// What compat.js and failover.js share: timestamped logging and failing loudly.

const started = Date.now();

function seconds() {
  return (Date.now() - started) / 1000;
}

// A log function that prefixes each line with `name` and the seconds since start.
function logger(name) {
  return (...args) => console.log(`[${name} ${seconds().toFixed(1).padStart(5)}s]`, ...args);
}

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}

module.exports = { seconds, logger, fail };
