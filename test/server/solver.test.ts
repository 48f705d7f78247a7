/**
 * A turn's solver over GraphQL: SubmitTurnInput.solver is stored on the turn and read back as Turn.solver (null:
 * the model's default); a name the Solver enum does not have is a typed error and writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession, errorCode, startTestServer, waitTurn, type TestServer } from './harness.js';

const SUBMIT = /* GraphQL */ `
  mutation($input: SubmitTurnInput!) { submitTurn(input: $input) { id solver } }`;
const SOLVER = /* GraphQL */ `query($id: ID!) { turn(id: $id) { solver status } }`;
const TURNS = /* GraphQL */ `query($s: ID!) { session(id: $s) { turns { id } } }`;

describe('turn solver', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('each solver round-trips through submitTurn and Turn.solver, and its turn renders; none reads back null', async () => {
    const { sessionId, teller } = await createSession(s);
    for (const solver of ['DDIM', 'DPM_SOLVER_PP_2M', null]) {
      const d = await s.ok<{ submitTurn: { id: string; solver: string | null } }>(
        SUBMIT, { input: { sessionId, instruction: 'add a red cube in the middle', steps: 3, ...(solver ? { solver } : {}) } }, teller,
      );
      expect(d.submitTurn.solver).toBe(solver);
      expect((await waitTurn(s, teller, d.submitTurn.id)).status).toBe('SUCCEEDED');
      const read = await s.ok<{ turn: { solver: string | null } }>(SOLVER, { id: d.submitTurn.id }, teller);
      expect(read.turn.solver).toBe(solver);
    }
  });

  it('an unknown solver is refused by the schema before anything is written', async () => {
    const { sessionId, teller } = await createSession(s);
    const asVariable = await s.gql(SUBMIT, { input: { sessionId, instruction: 'add a cube', solver: 'EULER' } }, teller);
    expect(asVariable.status).toBe(400);
    expect(errorCode(asVariable)).toBe('BAD_USER_INPUT');
    expect(asVariable.errors![0]!.message).toMatch(/Solver/);
    const inline = await s.gql(`mutation($s: ID!) { submitTurn(input: { sessionId: $s, instruction: "add a cube", solver: EULER }) { id } }`, { s: sessionId }, teller);
    expect(errorCode(inline)).toBe('GRAPHQL_VALIDATION_FAILED');
    // The engine's name is not the API's either.
    const engineName = await s.gql(SUBMIT, { input: { sessionId, instruction: 'add a cube', solver: 'dpm++2m' } }, teller);
    expect(errorCode(engineName)).toBe('BAD_USER_INPUT');
    const { session } = await s.ok<{ session: { turns: unknown[] } }>(TURNS, { s: sessionId }, teller);
    expect(session.turns).toEqual([]);
  });
});
