/**
 * Which topics exist, as TOPICS, STATS and `/topics` show them through a gateway: those in the
 * cluster's stats snapshot (cluster-stats.ts, refreshed every second), corrected by what this
 * gateway did since that snapshot began: a topic it published to exists at once, one it saw
 * deleted (here or, through the deleted-topics subject, by another gateway) is gone at once.
 * Without the correction a client would not find the topic it just published to, or would still
 * find the one it just deleted, for up to a second.
 */
export class TopicPresence {
  /** Topic -> Date.now() ms of its last publish through this gateway, until a snapshot covers it. */
  readonly #publishedSince = new Map<string, number>();
  /** Topic -> Date.now() ms of its last delete seen here, until a snapshot covers it. */
  readonly #deletedSince = new Map<string, number>();

  /** A publish to `topic` was acknowledged through this gateway. */
  notePublished(topic: string): void {
    this.#publishedSince.set(topic, Date.now());
  }

  /** `topic` was deleted (here or by another gateway). */
  noteDeleted(topic: string): void {
    this.#deletedSince.set(topic, Date.now());
    this.#publishedSince.delete(topic);
  }

  /** The topics that exist, sorted: `snapshotTopics` (the cluster's view) corrected as above. */
  names(snapshotTopics: Iterable<string>): string[] {
    const names = new Set<string>(snapshotTopics);
    for (const topic of this.#publishedSince.keys()) names.add(topic);
    for (const [topic, deletedAt] of this.#deletedSince) {
      const publishedAt = this.#publishedSince.get(topic);
      if (publishedAt === undefined || publishedAt < deletedAt) names.delete(topic);
    }
    return [...names].sort();
  }

  /** A snapshot begun at `takenAtMs` (Date.now() ms) is in: corrections older than it are dropped. */
  snapshotTaken(takenAtMs: number): void {
    for (const [topic, at] of this.#publishedSince) if (at < takenAtMs) this.#publishedSince.delete(topic);
    for (const [topic, at] of this.#deletedSince) if (at < takenAtMs) this.#deletedSince.delete(topic);
  }
}
