// fauxqs without its per-request log lines: its own CLI turns them on, and at benchmark rates
// writing them costs the server a noticeable share of its one core. Port from FAUXQS_PORT.
import { startFauxqs } from "./node/node_modules/fauxqs/dist/app.js";

await startFauxqs({ logger: false });
