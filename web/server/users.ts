// User management for administrators, mounted at /api/users (behind the session check of routes.ts):
//   GET    /            every user (never their password hash)
//   POST   /            create { id, name?, role, password, queues?, skills? }
//   PATCH  /:id         change { name?, role?, queues?, skills?, disabled? }
//   DELETE /:id         remove the user (their sessions stop at once, their agent signs off)
// Only admins: anyone else gets 403 with the reason. An admin cannot demote, disable or delete
// themselves, so the workspace never loses its last way in by accident.
import { Hono, type Context } from 'hono';
import * as v from 'valibot';
import type { ActorClient } from '../../actors/client.ts';
import { AccountError, UserId, type Accounts, type Session } from './accounts.ts';
import { isResponse, jsonBody, reasonOf, UserBody, UserPatchBody } from './schemas.ts';

type Env = { Variables: { session: Session } };
type Ctx = Context<Env>;

export function userRoutes(deps: { accounts: Accounts; actors: ActorClient }): Hono<Env> {
  const { accounts, actors } = deps;
  const app = new Hono<Env>();
  const fail = (c: Ctx, status: 400 | 403 | 404 | 409, error: string) => c.json({ error }, status);
  const answer = (c: Ctx, e: unknown) => {
    if (e instanceof AccountError) return fail(c, e.status === 401 ? 403 : e.status, e.message);
    throw e;
  };

  app.use('*', async (c, next) => {
    if (c.get('session').role !== 'admin') return fail(c, 403, 'managing users needs the admin role');
    await next();
  });

  app.get('/', async (c) => c.json({ users: await accounts.list() }));

  app.post('/', async (c) => {
    const b = await jsonBody(c, UserBody);
    if (isResponse(b)) return b;
    try {
      const u = await accounts.create(b);
      // The user id is the agent actor id: its profile carries the name, queues and skills.
      await actors.tell(`agent/${u.id}`, { type: 'profile.set', name: u.name, queues: u.queues, skills: b.skills });
      return c.json(u, 201);
    } catch (e) {
      return answer(c, e);
    }
  });

  const idOf = (c: Ctx) => v.safeParse(UserId, c.req.param('id'));

  app.patch('/:id', async (c) => {
    const id = idOf(c);
    if (!id.success) return fail(c, 400, `id: ${reasonOf(id.issues)}`);
    const b = await jsonBody(c, UserPatchBody);
    if (isResponse(b)) return b;
    if (id.output === c.get('session').user && ((b.role && b.role !== 'admin') || b.disabled)) return fail(c, 409, 'you cannot demote or disable yourself; ask another admin');
    try {
      const u = await accounts.update(id.output, { name: b.name, role: b.role, queues: b.queues, skills: b.skills, disabled: b.disabled });
      if (b.name || b.queues || b.skills) await actors.tell(`agent/${u.id}`, { type: 'profile.set', name: b.name, queues: b.queues, skills: b.skills });
      // A disabled agent stops taking work: held offers go back to their queues.
      if (b.disabled) await actors.tell(`agent/${u.id}`, { type: 'logout' });
      return c.json(u);
    } catch (e) {
      return answer(c, e);
    }
  });

  app.delete('/:id', async (c) => {
    const id = idOf(c);
    if (!id.success) return fail(c, 400, `id: ${reasonOf(id.issues)}`);
    if (id.output === c.get('session').user) return fail(c, 409, 'you cannot delete yourself; ask another admin');
    try {
      await accounts.remove(id.output);
      await actors.tell(`agent/${id.output}`, { type: 'logout' });
      return c.json({ ok: true });
    } catch (e) {
      return answer(c, e);
    }
  });

  return app;
}
