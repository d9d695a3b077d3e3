// The serving image of a `workers: 1` proxy: bin/tiergate.js imports this file instead of the CLI when
// TIERGATE_PROXY_SERVE is set (single-image.ts). Plain JavaScript on purpose, as worker-entry.js: every TypeScript
// module it loads is in Node's compile cache (`tiergate warm-cache` imports single-image.ts), so it strips none.
import { runServeImage } from './single-image.ts';

await runServeImage();
