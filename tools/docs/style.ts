/*
 * The site's one style sheet: docco's two columns (prose on the left, code on the right, a row
 * per section), highlight.js's token classes in quiet colours, and a layout that stays readable
 * on a narrow screen (the columns stack).
 */
export const STYLE = `
body { margin: 0; font: 15px/1.5 system-ui, sans-serif; color: #222; background: #fff; }
header { padding: 8px 16px; background: #1d2b36; color: #cde; font-size: 14px; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
main { padding: 0 16px 48px; }
nav.file { padding: 4px 16px; font-size: 13px; background: #f4f6f8; border-bottom: 1px solid #dde; }
nav.file p { margin: 4px 0; }
h1 { font-size: 20px; font-family: ui-monospace, monospace; }
table.sections { border-collapse: collapse; width: 100%; table-layout: fixed; }
td { vertical-align: top; padding: 6px 14px; }
td.prose { width: 42%; background: #fbfbf8; border-right: 1px solid #e6e6e0; }
td.prose pre { white-space: pre; overflow-x: auto; font-size: 11.5px; }
td.code pre { margin: 0; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; overflow-x: auto; }
a { color: #0b5fa5; } a.upstream { color: #7a3e9d; }
code { font-family: ui-monospace, monospace; font-size: 0.92em; }
.hljs-keyword, .hljs-built_in { color: #8a3b12; } .hljs-string { color: #2a6e2a; }
.hljs-number, .hljs-literal { color: #1f5e9e; } .hljs-comment { color: #777; font-style: italic; }
.hljs-title, .hljs-title.function_ { color: #5a2d82; } .hljs-type, .hljs-title.class_ { color: #0a6a6a; }
section.path { margin: 12px 0 28px; }
.timeline-box { overflow-x: auto; border: 1px solid #e3e6ea; }
svg.timeline a:hover rect, svg.timeline a:hover path { opacity: 0.75; }
table.steps { border-collapse: collapse; font-size: 12.5px; margin-top: 8px; }
table.steps td, table.steps th { padding: 2px 8px; border-bottom: 1px solid #eef0f2; text-align: left; vertical-align: top; }
table.steps td.num { text-align: right; font-family: ui-monospace, monospace; }
table.steps tr.flow td { font-weight: 600; }
table.steps small { color: #667; font-weight: normal; }
@media (max-width: 900px) { table.sections, tr, td { display: block; width: auto !important; } }
`;
