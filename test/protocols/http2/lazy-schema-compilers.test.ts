import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { lazySchemaController } from '../../../src/protocols/http2/lazy-schema-compilers.js';

test('lazy schema compilers: a route with a body schema still validates and serializes', async () => {
  const app = Fastify({ schemaController: lazySchemaController });
  app.post(
    '/x',
    {
      schema: {
        body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
        response: { 200: { type: 'object', properties: { doubled: { type: 'integer' } } } },
      },
    },
    async (req) => ({ doubled: (req.body as { n: number }).n * 2, dropped: 'by the serializer' }),
  );
  const bad = await app.inject({ method: 'POST', url: '/x', payload: { n: 'two' } });
  assert.equal(bad.statusCode, 400);
  assert.match(bad.json().message, /body\/n must be integer/);
  const good = await app.inject({ method: 'POST', url: '/x', payload: { n: 21 } });
  assert.equal(good.statusCode, 200);
  assert.deepEqual(good.json(), { doubled: 42 });
  await app.close();
});
