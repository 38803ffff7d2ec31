// Development OpenID Connect provider for Jingzhun staff sign-in (the production compose runs Keycloak).
//
// A real provider (panva's oidc-provider, certified) rather than a mock, so the docs' Authorize button and the
// tests go through the same authorization code + PKCE exchange a browser does against Keycloak: login form,
// consent, redirect with a code, token endpoint with the code_verifier. Access tokens are JWTs (RFC 9068)
// for one resource whose audience is the services' JZ_JWT_AUDIENCE; they carry the account's `roles` and
// `area`, which the services map to scopes (shared/oidc.py). Nothing here grants API scopes directly: a
// client cannot ask for `admin`, only a role can give it.
//
// Settings (environment):
//   OIDC_DEV_PORT           listening port (default 8009), loopback only
//   OIDC_DEV_ISSUER         issuer (default http://127.0.0.1:<port>)
//   OIDC_DEV_AUDIENCE       `aud` of access tokens (default jingzhun = JZ_JWT_AUDIENCE's default)
//   OIDC_DEV_RESOURCE       resource indicator the access tokens are for (default urn:jingzhun:api)
//   OIDC_DEV_REDIRECT_URIS  comma-separated redirect URIs of the docs client (default: each service's
//                           /docs/oauth2-redirect on 127.0.0.1 and localhost, ports 8001-8003)
//   OIDC_DEV_KEYS_FILE      JWKS with the private signing key; created (0600) when missing, so tokens
//                           survive a restart. Unset: a key in memory only.
//   OIDC_DEV_ACCOUNTS_FILE  demo accounts (default accounts.json next to this file)
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider, { errors } from 'oidc-provider';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const port = Number(env.OIDC_DEV_PORT || 8009);
const issuer = (env.OIDC_DEV_ISSUER || `http://127.0.0.1:${port}`).replace(/\/$/, '');
const audience = env.OIDC_DEV_AUDIENCE || 'jingzhun';
const resource = env.OIDC_DEV_RESOURCE || 'urn:jingzhun:api';
const clientId = env.OIDC_DEV_CLIENT_ID || 'jingzhun-docs';
const redirectUris = (env.OIDC_DEV_REDIRECT_URIS
  || ['8001', '8002', '8003'].flatMap((p) => ['127.0.0.1', 'localhost']
    .map((host) => `http://${host}:${p}/docs/oauth2-redirect`)).join(','))
  .split(',').map((uri) => uri.trim()).filter(Boolean);

const accountsFile = env.OIDC_DEV_ACCOUNTS_FILE || path.join(here, 'accounts.json');
const directory = JSON.parse(fs.readFileSync(accountsFile, 'utf8'));
const accounts = directory.accounts;

function signingKeys() {
  const file = env.OIDC_DEV_KEYS_FILE;
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const jwks = { keys: [{ ...jwk, use: 'sig', alg: 'RS256', kid: crypto.randomBytes(8).toString('hex') }] };
  if (file) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(jwks), { mode: 0o600 });
  }
  return jwks;
}

function passwordMatches(given) {
  const a = Buffer.from(String(given ?? ''));
  const b = Buffer.from(directory.password);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function accountClaims(id) {
  const account = accounts[id];
  const claims = { name: account.name, preferred_username: id, roles: account.roles };
  if (account.area) claims.area = account.area;
  return claims;
}

const configuration = {
  clients: [{
    client_id: clientId,
    client_name: 'Jingzhun API docs',
    application_type: 'web',
    token_endpoint_auth_method: 'none', // public: a browser page cannot keep a secret, PKCE protects the code
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: redirectUris,
  }],
  pkce: { required: () => true }, // S256 only (the library's default and only allowed method)
  jwks: signingKeys(),
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'roles', 'area'] },
  scopes: ['openid', 'profile'],
  async findAccount(ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...accountClaims(id) }; } };
  },
  features: {
    devInteractions: { enabled: false }, // our own form: it checks a password, the dev one takes anything
    resourceIndicators: {
      enabled: true,
      // Swagger UI sends no `resource`: the services' API is the default, and the token endpoint uses the
      // granted one, so the access token is always the JWT for the services (not an opaque userinfo token).
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return { scope: 'api', audience, accessTokenTTL: 3600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  // Roles and area go into the access token: that is what the services read (no userinfo call per request).
  async extraTokenClaims(ctx, token) {
    if (token.kind !== 'AccessToken' || !token.accountId || !Object.hasOwn(accounts, token.accountId)) return undefined;
    return accountClaims(token.accountId);
  },
  clientBasedCORS(ctx, origin, client) { // the docs page (another port) calls the token endpoint
    return client.redirectUris.some((uri) => new URL(uri).origin === origin);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 8 * 3600, Grant: 8 * 3600 },
};

const provider = new Provider(issuer, configuration);

// -- the sign-in and consent pages --------------------------------------------------------------------------
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-frame-options': 'DENY' });
  res.end(`<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;max-width:26rem;margin:4rem auto}input,button{display:block;margin:.5rem 0;padding:.4rem;width:100%}.error{color:#b00}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`);
}

function loginForm(res, uid, error, login = '') {
  const names = Object.entries(accounts).map(([id, a]) => `<li><code>${escape(id)}</code> ${escape(a.name)} (${escape(a.roles.join(', '))}${a.area ? `, ${escape(a.area)}` : ''})</li>`).join('');
  page(res, error ? 401 : 200, '精准 · 工作人员登录 / Staff sign-in', `${error ? `<p class="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label>账号 / Account<input name="login" value="${escape(login)}" required autofocus></label>
<label>密码 / Password<input name="password" type="password" required></label>
<button type="submit">登录 / Sign in</button></form>
<p>Development accounts (password <code>${escape(directory.password)}</code>):</p><ul>${names}</ul>`);
}

async function readForm(req) {
  let raw = '';
  for await (const chunk of req) {
    raw += chunk;
    if (raw.length > 10_000) throw new errors.InvalidRequest('form too large');
  }
  return new URLSearchParams(raw);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return loginForm(res, uid);
    const account = accounts[details.session.accountId];
    return page(res, 200, '授权 / Authorize', `<p><b>${escape(params.client_id)}</b> asks to act as
<b>${escape(account.name)}</b> (${escape(details.session.accountId)}) on the Jingzhun services, with the roles
${escape(account.roles.join(', '))}.</p>
<form method="post" action="/interaction/${escape(uid)}/confirm"><button type="submit">同意 / Allow</button></form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">拒绝 / Deny</button></form>`);
  }
  if (req.method !== 'POST') return page(res, 405, 'Method not allowed', '');
  const form = await readForm(req);
  if (action === 'login') {
    if (prompt.name !== 'login') return page(res, 400, 'Unexpected step', '<p>This sign-in is not asking for a login.</p>');
    const login = form.get('login') || '';
    if (!Object.hasOwn(accounts, login) || !passwordMatches(form.get('password'))) {
      return loginForm(res, uid, '账号或密码错误 / Wrong account or password', login);
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm') {
    if (prompt.name !== 'consent') return page(res, 400, 'Unexpected step', '<p>This sign-in is not asking for consent.</p>');
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }
  if (action === 'abort') {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user denied the sign-in' },
      { mergeWithLastSubmission: false });
  }
  return page(res, 404, 'Not found', '');
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec(new URL(req.url, issuer).pathname);
  if (!match) return callback(req, res);
  try {
    return await interaction(req, res, match[1], match[2]);
  } catch (err) {
    // An expired or unknown interaction (SessionNotFound) or a bad form: say it, do not crash the provider.
    const status = err.statusCode || 500;
    if (status >= 500) console.error(err);
    if (!res.headersSent) page(res, status, 'Sign-in failed', `<p>${escape(err.error_description || err.message)}</p>`);
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-dev provider: issuer ${issuer}, client ${clientId}, audience ${audience}, ` +
    `accounts ${Object.keys(accounts).join(', ')}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0)); // nothing to flush: sessions live in memory
