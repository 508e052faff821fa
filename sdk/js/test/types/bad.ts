// Must NOT compile (types.test.mjs expects exactly these errors).
import { createRTS } from 'rtmd-rts';

const rts = createRTS('app');
rts.on('onMessageReceived', (userId: string, data: ArrayBuffer) => console.log(userId, data)); // wrong argument type
rts.on('onNoSuchEvent', () => undefined); // unknown event
void rts.sendMessage('bob', 42); // message must be a string
const n: number = rts.setBusinessId('x'); // returns boolean
console.log(n);
void rts.joinSession(42); // the token is a string
rts.sessionInfo = null; // read-only
