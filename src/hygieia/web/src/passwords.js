// What a new password must be (the browser side of hygieia.client.passwords): at least
// 15 characters (NIST SP 800-63B for a password used alone) and a zxcvbn score of at
// least 3. The estimator and its word lists (~1 MB) load on first use, as their own
// chunk, so the login page doesn't pay for them.

export const MIN_PASSWORD = 15;
export const MIN_SCORE = 3;

export class WeakPasswordError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WeakPasswordError';
  }
}

/** Characters as the KDF counts them: code points after NFKC. */
export function passwordLength(password) {
  return [...password.normalize('NFKC')].length;
}

/** A sentence saying what is wrong with `password`, or null if it is fine. */
export async function passwordProblem(password, userInputs = []) {
  const length = passwordLength(password);
  if (length < MIN_PASSWORD) {
    return `Choose a password of at least ${MIN_PASSWORD} characters (this one has ${length}). A few unrelated words are easy to remember.`;
  }
  const { estimate } = await import('./strength.js');
  const result = estimate(password, userInputs);
  if (result.score >= MIN_SCORE) return null;
  const advice = [result.feedback.warning, ...result.feedback.suggestions]
    .filter(Boolean)
    .join(' ');
  return `This password is too easy to guess. ${advice || 'Add a few unrelated words.'}`;
}

export async function requireStrongPassword(password, userInputs = []) {
  const problem = await passwordProblem(password, userInputs);
  if (problem) throw new WeakPasswordError(problem);
}
