// One colour per problem type, in taxonomy order, as a stylesheet built from the served
// taxonomy: new types get a colour without touching the CSS. (A constructed stylesheet is
// CSSOM, which the page's Content-Security-Policy allows without 'unsafe-inline'.)

const PALETTE = ["#e8710a", "#b58900", "#d93025", "#8e44ad", "#138d75", "#1f77b4", "#8c564b", "#c2185b", "#0097a7", "#5d4037", "#827717", "#283593"];

/** `.t-<key> { --c: colour }` for each of `problemTypes` ([{key}]). */
export function paintTypes(problemTypes) {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(problemTypes.map((p, i) => `.t-${CSS.escape(p.key)} { --c: ${PALETTE[i % PALETTE.length]}; }`).join("\n"));
  document.adoptedStyleSheets = [sheet];
}
