/** What the home page shows. */
export interface HomePageModel {
  instanceId: string;
  hostname: string;
  clientAddress: string;
  user: string | undefined;
  cart: Record<string, number>;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe inside HTML element content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

/** The home page: which app server answered, who the client is, the login form with its captcha, the cart. */
export function renderHomePage(model: HomePageModel): string {
  const e = escapeHtml;
  const cartRows = Object.entries(model.cart)
    .map(([item, qty]) => `<li>${e(item)} × ${qty}</li>`)
    .join('');
  const account = model.user
    ? `<p>Signed in as <strong id="user">${e(model.user)}</strong></p>
       <form method="post" action="/logout"><button>Sign out</button></form>`
    : `<form method="post" action="/login">
         <label>User <input name="user" autocomplete="username"></label>
         <label>Password <input name="password" type="password" autocomplete="current-password"></label>
         <img src="/captcha" alt="captcha" width="150" height="48">
         <label>Captcha <input name="captcha" autocomplete="off"></label>
         <button>Sign in</button>
       </form>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tiergate demo · ${e(model.instanceId)}</title></head>
<body>
  <h1>tiergate demo app</h1>
  <p>Served by instance <strong id="instance">${e(model.instanceId)}</strong> on host ${e(model.hostname)}</p>
  <p>Your address as this app sees it: <code id="client">${e(model.clientAddress)}</code></p>
  ${account}
  <h2>Cart</h2>
  <ul id="cart">${cartRows || '<li>empty</li>'}</ul>
  <form method="post" action="/cart">
    <input name="item" placeholder="item"> <input name="qty" value="1" size="3"> <button>Add</button>
  </form>
</body></html>
`;
}
