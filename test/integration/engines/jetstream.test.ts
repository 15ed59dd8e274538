/** The engine-parity suite (engine-suite.ts) on `--engine jetstream` (a three-node NATS cluster). */
import { engineSuite } from './engine-suite.js';

engineSuite('jetstream');
