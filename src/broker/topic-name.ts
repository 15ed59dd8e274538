/**
 * Moved to engine/topic-name.ts (the rule is the engine's, SPEC §2). Kept only for
 * protocols/http2/server.ts, which imports it until the lead switches the adapters to the engine
 * seam; delete it then.
 */
export { assertTopicName, isValidTopicName } from '../engine/topic-name.js';
