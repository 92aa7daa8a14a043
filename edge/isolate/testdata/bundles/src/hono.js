import { Hono } from 'hono';

const app = new Hono();
app.get('/', (c) => c.text('hello hono'));
app.get('/json/:name', (c) =>
  c.json({ name: c.req.param('name'), q: c.req.query('q') ?? null, greeting: c.env.GREETING ?? null }));
app.post('/echo', async (c) => {
  const body = await c.req.json();
  return c.json({ got: body, type: c.req.header('content-type') }, 201);
});
app.get('/log', (c) => {
  console.log('hono log', c.req.path);
  return c.text('logged');
});
app.notFound((c) => c.text('nothing here', 404));
export default app;
