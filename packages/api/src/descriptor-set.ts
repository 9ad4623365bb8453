/**
 * Where the buf-compiled descriptor set of every proto (with its comments) is:
 * `npm run build` writes it beside this module. Reflection serves it as is.
 */
export const descriptorSetUrl: URL = new URL("./procmon.binpb", import.meta.url);
