/**
 * Moved to engine/topic-name.ts (the rule is the engine's, SPEC §2). Kept only for
 * protocols/resp/queue-commands.ts, which imports it until the RESP adapter is switched to the
 * engine seam; delete it then.
 */
export { assertTopicName, isValidTopicName } from '../engine/topic-name.js';
