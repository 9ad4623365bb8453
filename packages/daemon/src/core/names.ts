/** What a process name may be, as the contract words it (for messages). */
export const NAME_RULE = "1-128 letters, digits and . _ - : @, starting with a letter or digit";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** True if `name` is a valid process name: {@link NAME_RULE}. */
export function isProcessName(name: string): boolean {
  return NAME.test(name);
}
