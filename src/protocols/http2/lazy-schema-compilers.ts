/**
 * Fastify's schema compilers, loaded on first use (issue 11, start time).
 *
 * No route of ours declares a JSON schema, yet Fastify requires its default validator (ajv) and
 * serializer (fast-json-stringify) compilers when the instance is created: about 550 KB of
 * JavaScript compiled on every start, a fifth of the time from spawn to listening. Handed to
 * Fastify's documented `schemaController.compilersFactory` option, these factories require the
 * same default compilers, with the same arguments, the first time a route with a schema is
 * registered, so behaviour is unchanged if one ever is.
 */
import { createRequire } from 'node:module';
import type { FastifyServerOptions } from 'fastify';

// Resolved from fastify's own location, where npm put its dependencies (hoisted or nested).
const requireCjs = createRequire(createRequire(import.meta.url).resolve('fastify'));

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type BuildValidator = NonNullable<CompilersFactory['buildValidator']>;
type BuildSerializer = NonNullable<CompilersFactory['buildSerializer']>;

/** Fastify's default validator compiler factory (@fastify/ajv-compiler), required on first call. */
const buildValidator: BuildValidator = (externalSchemas, ajvServerOption) => {
  const selector = requireCjs('@fastify/ajv-compiler') as () => BuildValidator;
  return selector()(externalSchemas, ajvServerOption);
};

/** Fastify's default serializer compiler factory (@fastify/fast-json-stringify-compiler), required on first call. */
const buildSerializer: BuildSerializer = (externalSchemas, serializerOptsServerOption) => {
  const selector = requireCjs('@fastify/fast-json-stringify-compiler') as () => BuildSerializer;
  return selector()(externalSchemas, serializerOptsServerOption);
};

/** The `schemaController` option for Fastify(): default compilers, loaded lazily. */
export const lazySchemaController: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: { buildValidator, buildSerializer },
};
