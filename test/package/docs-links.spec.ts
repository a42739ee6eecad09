import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

// The README is the npm registry page and docs/ ships in the package: a link
// must work on the registry and in the repository alike. So a relative link
// may only point at a shipped file (README.md, docs/); everything else is an
// absolute URL; nothing points outside the repository.

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '../..');
const GITHUB = 'https://github.com/nestjs-tunnel-pool/nestjs-tunnel-pool/';

function markdownFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? markdownFiles(path.join(dir, entry.name)) : entry.name.endsWith('.md') ? [path.join(dir, entry.name)] : [],
  );
}

/** [text](target) and ![alt](target), outside code blocks. */
function links(file: string): string[] {
  const text = readFileSync(path.join(root, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  return [...text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)].map((match) => match[1]!);
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens. */
function anchors(file: string): Set<string> {
  const text = readFileSync(path.join(root, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set(
    [...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) =>
      match[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'),
    ),
  );
}

const packageFiles = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { files: string[] }).files.map((entry) => path.normalize(entry));
const isShipped = (file: string): boolean => file === 'README.md' || packageFiles.some((entry) => file === entry || file.startsWith(`${entry}${path.sep}`));
const shipped = ['README.md', ...markdownFiles('docs')];

describe('links in the shipped docs work on the registry and in the repository', () => {
  it('docs/ is in the package', () => {
    expect(shipped.every(isShipped)).toBe(true);
  });

  it.each(shipped)('%s', (file) => {
    const problems: string[] = [];
    for (const link of links(file)) {
      if (/^[a-z]+:/.test(link)) continue; // absolute: works anywhere
      const [target, fragment] = link.split('#') as [string, string | undefined];
      const resolved = target === '' ? file : path.normalize(path.join(path.dirname(file), target));
      if (resolved.startsWith('..')) {
        problems.push(`${link}: outside the repository`);
        continue;
      }
      if (!isShipped(resolved)) {
        problems.push(`${link}: ${resolved} is not shipped in the package; use ${GITHUB}blob/main/${resolved}`);
        continue;
      }
      // Each extension's own file is written with the change that adds it (see docs/PROTOCOL.md#extensions).
      if (resolved.startsWith(path.join('docs', 'extensions')) && !existsSync(path.join(root, resolved))) continue;
      if (!existsSync(path.join(root, resolved))) problems.push(`${link}: ${resolved} does not exist`);
      else if (fragment && resolved.endsWith('.md') && !anchors(resolved).has(fragment)) problems.push(`${link}: no heading #${fragment} in ${resolved}`);
    }
    expect(problems).toEqual([]);
  });

  it('every extension under docs/extensions is listed in docs/PROTOCOL.md#extensions', () => {
    const dir = path.join(root, 'docs', 'extensions');
    const files = existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.md') && name !== 'README.md') : [];
    const listed = links('docs/PROTOCOL.md');
    for (const name of files) expect(listed).toContain(`extensions/${name}`);
  });
});
