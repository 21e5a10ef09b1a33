// A standalone OpenID Connect provider for the tests: panva's certified oidc-provider on
// loopback, configured from a JSON file (argv[2]):
//
//   {"port": 0, "issuer": "http://127.0.0.1:<port>",
//    "clients": [{"client_id", "client_secret", "redirect_uris": [...],
//                 "post_logout_redirect_uris": [...], ...more client metadata}],
//    "accounts": {"<login>": {"sub", "email", "email_verified", "name",
//                             "preferred_username", "groups": [...]}}}
//
// Port 0 (or none) lets the OS choose; the issuer is then http://127.0.0.1:<chosen port>
// unless given. Prints exactly one line, `ready <issuer>`, on stdout once it listens;
// everything else goes to stderr. Exits on SIGTERM and SIGINT.
//
// Sign-in is its own minimal interaction pages instead of devInteractions (those take any
// login name, and one findAccount does not know ends in a 500 server_error): a form
// asks for the login name only; an unknown login gets the form again with an error and
// status 403, never a code; "Cancel" returns access_denied to the client. Consent is
// granted without a page. Scope claims (profile, email, groups) go into the ID token
// (conformIdTokenClaims: false), not only to userinfo. PKCE (S256) is required of every
// client.

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';

// stdout carries the ready line and nothing else.
console.log = console.error;
console.info = console.error;

// oidc-provider 9 uses URL.parse and crypto.hash: Node.js 20.18 or later. (It names
// Node.js 22 LTS as the supported runtime and warns on 20, which runs it; see below.)
if (typeof URL.parse !== 'function' || typeof crypto.hash !== 'function') {
  console.error(`oidc-provider 9 needs Node.js 20.18 or later (22 LTS preferred), not ${process.version}`);
  process.exit(2);
}

// Warnings that do not apply to a test provider: its state lives in memory on purpose,
// and Node.js 20 (not yet 22 LTS) runs everything the tests use.
const HARMLESS_WARNINGS = ['in-memory adapter', 'Unsupported runtime'];
const warn = console.warn;
console.warn = (...args) => {
  const text = args.map(String).join(' ');
  if (!HARMLESS_WARNINGS.some((part) => text.includes(part))) warn(...args);
};

// Imported once the filter is in place: it warns about the runtime as it loads.
const { default: Provider } = await import('oidc-provider');

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts ?? {};

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

function loginPage(uid, login, error) {
  const alert = error ? `<p role="alert" id="error">${escapeHtml(error)}</p>\n` : '';
  const value = login ? ` value="${escapeHtml(login)}"` : '';
  return page('Sign in', `${alert}<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Login name <input type="text" name="login" required autofocus autocomplete="off"${value}></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
<button type="submit">Cancel</button>
</form>`);
}

function accountFor(sub) {
  const entry = Object.values(accounts).find((account) => account.sub === sub);
  if (!entry) return undefined;
  return {
    accountId: entry.sub,
    // Every claim the account has; the provider keeps those the granted scopes allow.
    async claims() {
      return { ...entry, sub: entry.sub };
    },
  };
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig',
  };
}

const configuration = {
  clients: config.clients ?? [],
  jwks: { keys: [signingKey()] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => accountFor(sub),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  // The library's defaults, spelled out (it notes each default it falls back to).
  ttl: {
    AccessToken: 60 * 60,
    AuthorizationCode: 60,
    IdToken: 60 * 60,
    RefreshToken: 14 * 24 * 60 * 60,
    Interaction: 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Grant: 14 * 24 * 60 * 60,
  },
  pkce: { required: () => true },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Sign out', `${form}
<p>Sign out of ${escapeHtml(ctx.host)}?</p>
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button type="submit" form="op.logoutForm">Stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    const description = out.error_description ? `: ${out.error_description}` : '';
    ctx.body = page('Error', `<p role="alert" id="error">${escapeHtml(out.error)}${escapeHtml(description)}</p>`);
  },
};

async function interactions(provider, ctx, next) {
  const match = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(ctx.path);
  if (!match) return next();
  const [, uid, action] = match;
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
  const { prompt, params, session, grantId } = details;

  let result;
  if (ctx.method === 'GET' && !action && prompt.name === 'login') {
    ctx.type = 'html';
    ctx.body = loginPage(uid, params.login_hint);
    return undefined;
  }
  if (ctx.method === 'GET' && !action && prompt.name === 'consent') {
    // Consent without asking: grant what the client asked for.
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else if (ctx.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const login = (await readForm(ctx.req)).get('login') ?? '';
    const account = Object.hasOwn(accounts, login) ? accounts[login] : undefined;
    if (!account) {
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = loginPage(uid, login, `Unknown login name: ${login}`);
      return undefined;
    }
    result = { login: { accountId: account.sub } };
  } else if (ctx.method === 'POST' && action === 'abort') {
    result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
  } else {
    ctx.throw(400, `no ${ctx.method} ${action ?? 'page'} for prompt ${prompt.name}`);
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: !result.login,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
}

const server = http.createServer();
server.listen(config.port ?? 0, '127.0.0.1', async () => {
  const issuer = config.issuer ?? `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  // A client the provider would refuse at its first use is refused now, with the reason.
  for (const client of configuration.clients) {
    try {
      await provider.Client.validate(client);
    } catch (error) {
      console.error(`client ${client.client_id}: ${error.error_description ?? error.message}`);
      process.exit(1);
    }
  }
  provider.use((ctx, next) => interactions(provider, ctx, next));
  server.on('request', provider.callback());
  process.stdout.write(`ready ${issuer}\n`);
});

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
