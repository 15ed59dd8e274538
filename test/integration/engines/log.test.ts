/** The engine-parity suite (engine-suite.ts) on `--engine log`. */
import { engineSuite } from './engine-suite.js';

engineSuite('log');
