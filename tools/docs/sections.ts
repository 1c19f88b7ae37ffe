/*
 * Splitting a source file into docco's sections: each section is a stretch of prose (the
 * comments that open it) beside the code that follows, until the next comment that stands on
 * its own lines.
 *
 * The layout is docco's and pycco's (Jeremy Ashkenas's "literate-programming-ish" generator):
 * comments in the left column, code in the right, one row per section, so a reader follows the
 * explanation and the code it explains side by side. ringvisor's files are written for that: a
 * header that orients, then a comment before each piece of the mechanism saying why.
 *
 * What counts as prose: a block comment (`/* ... *\/`, `/** ... *\/`) or a run of `//` lines
 * that starts at the beginning of a line (after indentation) and ends on its own line. A
 * comment at the end of a line of code is part of the code, and so is a comment inside a
 * statement that continues after it (it would read wrongly out of place).
 */

export interface Section {
  /** Markdown-ish prose with the comment markers taken off. */
  prose: string;
  code: string;
  /** 1-based line of the section's first line of code (of its prose when it has no code): its anchor. */
  line: number;
}

const BLOCK_OPEN = /^\s*\/\*\*?(.*)$/;
const LINE_COMMENT = /^\s*\/\/ ?(.*)$/;

/** Strips a block comment's leading `*` gutter, keeping the text's own indentation. */
function blockLine(line: string): string {
  return line.replace(/\s*\*\/\s*$/, '').replace(/^\s*\* ?/, '');
}

/**
 * Comments lay out tables and diagrams by indenting them (`  @0 u32 req_prod ...`); Markdown
 * would run those lines together, so a run of lines indented by two or more spaces becomes a
 * preformatted block, as the author drew it.
 */
function keepDrawings(prose: string): string {
  const out: string[] = [];
  let drawing = false;
  for (const line of prose.split('\n')) {
    const indented = /^ {2,}\S/.test(line);
    if (indented && !drawing) { out.push('```text'); drawing = true; }
    if (!indented && drawing && line.trim() !== '') { out.push('```'); drawing = false; }
    out.push(line);
  }
  if (drawing) out.push('```');
  return out.join('\n').replace(/\n+```\n/g, '\n```\n');
}

export function splitSections(source: string): Section[] {
  const lines = source.replace(/\r\n/g, '\n').split('\n');
  const sections: Section[] = [];
  let prose: string[] = [];
  let code: string[] = [];
  let proseLine = 0; // where this section's prose began, and its code (0: not yet)
  let codeLine = 0;
  const flush = () => {
    if (prose.length === 0 && code.every((l) => l.trim() === '')) { code = []; codeLine = 0; return; }
    sections.push({
      prose: keepDrawings(prose.join('\n').replace(/^\n+|\s+$/g, '')), code: code.join('\n').replace(/^\n+|\s+$/g, ''),
      line: codeLine || proseLine,
    });
    prose = [];
    code = [];
    proseLine = codeLine = 0;
  };
  const pushCode = (line: string, i: number) => {
    if (codeLine === 0 && line.trim() !== '') codeLine = i + 1;
    code.push(line);
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const open = BLOCK_OPEN.exec(line);
    if (open && !line.trimStart().startsWith('/**/')) {
      // A block comment on its own lines: find where it closes.
      let j = i;
      while (j < lines.length && !lines[j].includes('*/')) j++;
      const after = j < lines.length ? lines[j].slice(lines[j].indexOf('*/') + 2).trim() : '';
      if (after !== '') { pushCode(line, i); continue; } // `/* x */ code`: leave it in the code
      if (code.length > 0) flush();
      if (proseLine === 0) proseLine = i + 1;
      const body = lines.slice(i, j + 1).map((l, k) => (k === 0 ? open[1].replace(/\*\/\s*$/, '') : blockLine(l)));
      prose.push(...body, '');
      i = j;
      continue;
    }
    const lc = LINE_COMMENT.exec(line);
    if (lc) {
      if (code.length > 0 && code.some((l) => l.trim() !== '')) flush();
      if (proseLine === 0) proseLine = i + 1;
      prose.push(lc[1]);
      continue;
    }
    pushCode(line, i);
  }
  flush();
  return sections;
}
