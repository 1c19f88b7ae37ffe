/*
 * Links in the annotated source: the Xen, Linux and QEMU files a header names go to that
 * source, and the project's own paths go to their pages.
 *
 * ringvisor's headers cite the file where Xen made each decision (`xen/include/public/io/ring.h`,
 * `drivers/block/xen-blkback/blkback.c`, `hw/ide/core.c`). A reader who wants the original
 * should be one click away, so every such path in the prose becomes a link to the release
 * ringvisor follows: Xen 4.17 (the xenstore-utils on these machines are 4.17), a Linux LTS, and
 * QEMU's stable tree. A path that names no file (`tools/libs/light`) links to the folder.
 */

const XEN = 'https://xenbits.xen.org/gitweb/?p=xen.git;a=blob;hb=RELEASE-4.17.0;f=';
const XEN_TREE = 'https://xenbits.xen.org/gitweb/?p=xen.git;a=tree;hb=RELEASE-4.17.0;f=';
const LINUX = 'https://elixir.bootlin.com/linux/v6.6/source/';
const QEMU = 'https://gitlab.com/qemu-project/qemu/-/blob/stable-8.2/';
const QEMU_TREE = 'https://gitlab.com/qemu-project/qemu/-/tree/stable-8.2/';

/** Which upstream a path belongs to, by its first components. */
const UPSTREAMS: { prefix: RegExp; url: (path: string, isFile: boolean) => string }[] = [
  { prefix: /^(xen|tools|docs|extras\/mini-os)\//, url: (p, f) => (f ? XEN : XEN_TREE) + p },
  { prefix: /^(drivers|include\/(xen|linux|uapi)|arch\/x86\/(xen|kernel)|block|net\/(core|bridge|ethernet|ipv4)|mm|kernel)\//, url: (p) => LINUX + p },
  { prefix: /^(hw|net|block|include\/hw)\//, url: (p, f) => (f ? QEMU : QEMU_TREE) + p },
];

export function upstreamUrl(path: string): string | null {
  const isFile = /\.[a-z]+$/.test(path);
  for (const u of UPSTREAMS) if (u.prefix.test(path)) return u.url(path, isFile);
  return null;
}

/** Any path-looking word in prose (`./x.ts` relative to the page's file): ours if the project has it, else upstream. */
const ANY_PATH = /(?<![\w./-])((?:\.\.?\/)+[A-Za-z0-9_.\-/]*\.ts|(?:shared|hypervisor|dom0|domu|cli|scenarios|test|tools|bin|examples|xen|docs|extras|drivers|include|arch|block|net|mm|kernel|hw)\/[A-Za-z0-9_.\-/]*[A-Za-z0-9_])/g;

/**
 * Rewrites paths in the text of rendered HTML prose (outside tags and existing links) into
 * links. `own(path)` answers the page for one of the project's paths, or null when the project
 * has no such file, in which case the path is looked up upstream.
 */
export function linkPaths(html: string, own: (path: string) => string | null): string {
  return html.replace(/(<a\b[^>]*>[\s\S]*?<\/a>)|(<[^>]+>)|([^<]+)/g, (m, link, tag, text) => {
    if (link || tag || !text) return m;
    return (text as string).replace(ANY_PATH, (p: string) => {
      const href = own(p);
      if (href) return `<a href="${href}">${p}</a>`;
      const url = upstreamUrl(p);
      return url ? `<a class="upstream" href="${url}">${p}</a>` : p;
    });
  });
}
