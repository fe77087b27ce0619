/**
 * A report as a list of blocks (headings, paragraphs, tables, figures, code),
 * written once and rendered twice: to Markdown, and to one self-contained HTML
 * page. Inline text may carry `code` and **bold**, the only markup both sides
 * need.
 */

/** One piece of a report. */
export type Block =
  | { kind: 'heading'; level: 1 | 2 | 3; text: string }
  | { kind: 'paragraph'; text: string }
  | { kind: 'list'; items: string[] }
  | { kind: 'table'; header: string[]; rows: string[][]; rightAligned?: boolean[] }
  | { kind: 'figure'; caption: string; svg: string; png: string; svgFile: string }
  | { kind: 'code'; language: string; text: string };

function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function fence(text: string): string {
  let ticks = '```';
  while (text.includes(ticks)) ticks += '`';
  return ticks;
}

/** Renders blocks as GitHub-flavoured Markdown; figures point at their PNG files. */
export function toMarkdown(blocks: readonly Block[]): string {
  const parts: string[] = [];
  for (const block of blocks) {
    switch (block.kind) {
      case 'heading':
        parts.push(`${'#'.repeat(block.level)} ${block.text}`);
        break;
      case 'paragraph':
        parts.push(block.text);
        break;
      case 'list':
        parts.push(block.items.map((item) => `- ${item}`).join('\n'));
        break;
      case 'table': {
        const align = block.header.map((_, i) => (block.rightAligned?.[i] === true ? '---:' : '---'));
        const lines = [block.header, align, ...block.rows].map((row, i) =>
          i === 1 ? `| ${row.join(' | ')} |` : `| ${row.map(markdownCell).join(' | ')} |`,
        );
        parts.push(lines.join('\n'));
        break;
      }
      case 'figure':
        parts.push(`![${block.caption}](${block.png})\n\n*${block.caption}* ([SVG](${block.svgFile}))`);
        break;
      case 'code': {
        const marks = fence(block.text);
        parts.push(`${marks}${block.language}\n${block.text}\n${marks}`);
        break;
      }
    }
  }
  return `${parts.join('\n\n')}\n`;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function inlineHtml(text: string): string {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
  max-width: 1100px; margin: 2rem auto; padding: 0 1.5rem; line-height: 1.5; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #eaeef2; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .65rem; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
code { background: #f3f4f6; padding: .1rem .3rem; border-radius: 4px; font-size: .9em; }
pre { background: #f6f8fa; padding: .8rem 1rem; overflow-x: auto; border-radius: 6px; font-size: .85rem; }
pre code { background: none; padding: 0; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: .9rem; margin-top: .3rem; }
`;

/**
 * Renders blocks as one HTML page with nothing outside it: figures are
 * embedded as base64 SVG images (each its own document, so the ids inside
 * different figures cannot collide).
 */
export function toHtml(title: string, blocks: readonly Block[]): string {
  const body: string[] = [];
  for (const block of blocks) {
    switch (block.kind) {
      case 'heading':
        body.push(`<h${block.level}>${inlineHtml(block.text)}</h${block.level}>`);
        break;
      case 'paragraph':
        body.push(`<p>${inlineHtml(block.text)}</p>`);
        break;
      case 'list':
        body.push(`<ul>\n${block.items.map((item) => `<li>${inlineHtml(item)}</li>`).join('\n')}\n</ul>`);
        break;
      case 'table': {
        const cell = (text: string, i: number): string =>
          block.rightAligned?.[i] === true
            ? `<td class="num">${inlineHtml(text)}</td>`
            : `<td>${inlineHtml(text)}</td>`;
        const head = `<tr>${block.header.map((h) => `<th>${inlineHtml(h)}</th>`).join('')}</tr>`;
        const rows = block.rows.map((row) => `<tr>${row.map(cell).join('')}</tr>`);
        body.push(`<table>\n<thead>${head}</thead>\n<tbody>\n${rows.join('\n')}\n</tbody>\n</table>`);
        break;
      }
      case 'figure': {
        const data = Buffer.from(block.svg, 'utf8').toString('base64');
        body.push(
          `<figure><img alt="${escapeHtml(block.caption)}" src="data:image/svg+xml;base64,${data}">` +
            `<figcaption>${inlineHtml(block.caption)}</figcaption></figure>`,
        );
        break;
      }
      case 'code':
        body.push(`<pre><code>${escapeHtml(block.text)}</code></pre>`);
        break;
    }
  }
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    ...body,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
