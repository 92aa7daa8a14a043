import { renderToString } from 'react-dom/server';

function App({ path, items }) {
  return (
    <html>
      <head><title>Pier SSR</title></head>
      <body>
        <h1>Hello from {path}</h1>
        <ul>{items.map((x) => <li key={x}>item {x}</li>)}</ul>
      </body>
    </html>
  );
}

export default {
  fetch(request) {
    const url = new URL(request.url);
    const items = Array.from({ length: 20 }, (_, i) => i);
    const html = '<!doctype html>' + renderToString(<App path={url.pathname} items={items} />);
    return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } });
  },
};
