// A worker thread's first module is loaded before tsx (`--import tsx`) can transform it, and in a Node 20
// thread only tsx's CommonJS hook applies (that is also how piscina loads src/handlers/threadWorker.ts).
// So a thread whose code is TypeScript starts here and requires its real module, workerData.entry.
require(require('node:worker_threads').workerData.entry);
