// zxcvbn-ts with the common and English dictionaries: loaded on demand by passwords.js
// (a separate chunk of the bundle), so only the sign-up, password-change and recovery
// forms pay for it.
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';
import * as en from '@zxcvbn-ts/language-en';

const zxcvbn = new ZxcvbnFactory({
  translations: en.translations,
  graphs: common.adjacencyGraphs,
  dictionary: { ...common.dictionary, ...en.dictionary },
});

/** The estimator's verdict: {score 0–4, feedback {warning, suggestions}}. */
export function estimate(password, userInputs = []) {
  const words = [];
  for (const item of userInputs) {
    words.push(item, ...item.split(/[@.\s]+/).filter(Boolean));
  }
  // Its matching grows quadratically with the length; the first 100 characters give a
  // lower bound for the whole.
  return zxcvbn.check(password.slice(0, 100), [...words, 'hygieia']);
}
