// js-hello: a JavaScript wasi:http handler, built with componentize-js.
// StarlingMonkey answers `wasi:http/incoming-handler` through the fetch
// event, as a service worker would.

addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  const name = url.searchParams.get('name') || 'world';
  const plain = /^[A-Za-z0-9_-]{1,64}$/.test(name) ? name : 'world';
  event.respondWith(
    new Response(`hello, ${plain}, from JavaScript\n`, {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    }),
  );
});
