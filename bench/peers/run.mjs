// Benchmark one Node peer renderer on ogproxy's "gradient" card.
//   node bench/peers/run.mjs --renderer <vercel-og|satori-resvg|takumi> --iterations N --warmup W --out DIR
// Prints ONE line of JSON to stdout and writes the first measured image to DIR/<renderer>.png.
// Set up with `npm install --prefix bench/peers` (Inter from Debian's fonts-inter must be installed).
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    renderer: { type: 'string' },
    iterations: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '5' },
    out: { type: 'string', default: fileURLToPath(new URL('../results/peers', import.meta.url)) }, // git-ignored
  },
});
const RENDERERS = ['vercel-og', 'satori-resvg', 'takumi'];
if (!RENDERERS.includes(args.renderer)) {
  console.error(`--renderer must be one of ${RENDERERS.join(', ')}`);
  process.exit(2);
}
const ITER = Number(args.iterations), WARMUP = Number(args.warmup);
if (!(ITER >= 1 && WARMUP >= 0)) { console.error('bad --iterations/--warmup'); process.exit(2); }

const W = 1200, H = 630;
const pkg = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;

// Inter from Debian's fonts-inter (OTF: satori cannot read WOFF2).
const FONT_DIR = '/usr/share/fonts/opentype/inter';
const FONTS = [['Inter-Medium.otf', 500], ['Inter-Bold.otf', 700], ['Inter-ExtraBold.otf', 800]].map(
  ([file, weight]) => ({ name: 'Inter', data: readFileSync(join(FONT_DIR, file)), weight, style: 'normal' }),
);

// The card, as satori-style plain objects (no JSX). Mirrors ogproxy/builtin_templates/gradient.html with
// accent #6366f1: deep = mix(accent, #020617, 0.62) = #272a6a, ink = white. Title at a
// fixed 72px (ogproxy fits it in the browser); no emoji (satori would fetch it from a CDN).
// box-sizing: border-box everywhere, like the template's `*` rule (satori 0.63 would use content-box).
const TITLE = 'Shipping a self-hosted OG image service in one weekend';
const SUBTITLE = 'Marcus Chen · 8 min read';
const div = (style, children) => ({ type: 'div', props: { style: { boxSizing: 'border-box', ...style }, children } });
const glow = (size, right, top, opacity) =>
  div({ position: 'absolute', width: size, height: size, right, top, borderRadius: '50%', background: '#ffffff', opacity });
const card = (title) =>
  div({ width: W, height: H, display: 'flex', position: 'relative', fontFamily: 'Inter', color: '#ffffff',
        backgroundImage: 'linear-gradient(135deg, #6366f1 0%, #272a6a 100%)' }, [
    glow(560, -120, -220, 0.08),
    glow(340, 210, 420, 0.06),
    div({ position: 'relative', display: 'flex', flexDirection: 'column', width: '100%', height: '100%',
          padding: '80px 96px', gap: 30 }, [
      div({ display: 'flex', flexDirection: 'column', flexGrow: 1, justifyContent: 'center', minHeight: 0 }, [
        div({ fontSize: 72, fontWeight: 800, lineHeight: 1.12, letterSpacing: '-0.025em' }, title),
      ]),
      div({ display: 'flex', flexShrink: 0, paddingLeft: 26, borderLeft: '6px solid #ffffff' }, [
        div({ fontSize: 34, fontWeight: 500, lineHeight: 1.3, opacity: 0.86 }, SUBTITLE),
      ]),
    ]),
  ]);

// takumi wants {type:'container'|'text'} nodes: convert the same tree.
const toTakumi = ({ props: { style, children } }) =>
  typeof children === 'string'
    ? { type: 'text', text: children, style }
    : { type: 'container', style, children: (children ?? []).map(toTakumi) };

// Each setup returns { version, note, render(title) -> Promise<Uint8Array PNG> }.
const SETUPS = {
  async 'vercel-og'() {
    const { ImageResponse } = await import('@vercel/og');
    // In Node, @vercel/og rasterises with sharp (its optionalDependency) when it loads, else resvg-wasm.
    const raster = await import('sharp').then(() => `sharp ${pkg('sharp')}`, () => 'resvg-wasm');
    return {
      version: `@vercel/og ${pkg('@vercel/og')} (satori ${pkg('@vercel/og/node_modules/satori')}, raster: ${raster})`,
      note: 'ImageResponse body read with arrayBuffer(); Inter OTF fonts passed explicitly',
      async render(title) {
        const res = new ImageResponse(card(title), { width: W, height: H, fonts: FONTS });
        if (!res.ok) throw new Error(`ImageResponse status ${res.status}`);
        return new Uint8Array(await res.arrayBuffer());
      },
    };
  },
  async 'satori-resvg'() {
    const { default: satori } = await import('satori');
    const { Resvg } = await import('@resvg/resvg-js');
    return {
      version: `satori ${pkg('satori')} + @resvg/resvg-js ${pkg('@resvg/resvg-js')}`,
      note: 'satori -> SVG (text as paths) -> resvg-js PNG; resvg loadSystemFonts=false',
      async render(title) {
        const svg = await satori(card(title), { width: W, height: H, fonts: FONTS });
        const resvg = new Resvg(svg, { fitTo: { mode: 'original' }, font: { loadSystemFonts: false } });
        return resvg.render().asPng();
      },
    };
  },
  async takumi() {
    const { Renderer } = await import('@takumi-rs/core');
    const renderer = new Renderer();
    for (const f of FONTS) await renderer.registerFont(f);
    return {
      version: `@takumi-rs/core ${pkg('@takumi-rs/core')}`,
      note: 'native Renderer.render(node, {format:"png"}); fonts registered once at setup',
      render: (title) => renderer.render(toTakumi(card(title)), { width: W, height: H, format: 'png' }),
    };
  },
};

// A real 1200x630 PNG, or die: signature, then IHDR with big-endian width/height.
const SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
function checkPng(buf, label) {
  const b = Buffer.from(buf.buffer ?? buf, buf.byteOffset ?? 0, buf.byteLength);
  const ok = b.length > 33 && SIG.every((v, i) => b[i] === v) && b.toString('latin1', 12, 16) === 'IHDR';
  const w = ok ? b.readUInt32BE(16) : -1, h = ok ? b.readUInt32BE(20) : -1;
  if (w !== W || h !== H) throw new Error(`${label}: not a ${W}x${H} PNG (got ${ok ? `${w}x${h}` : 'no PNG header'}, ${b.length} bytes)`);
  return b;
}

// Offline means offline: any network fetch by a renderer (fonts, emoji) fails the run loudly.
globalThis.fetch = async (url) => { throw new Error(`network fetch attempted: ${url}`); };

const pct = (sorted, p) => {
  const i = (sorted.length - 1) * p, lo = Math.floor(i), hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
};
const r2 = (x) => Math.round(x * 100) / 100;

const name = args.renderer;
const base = { renderer: name, version: null, iterations: ITER, ms_p50: null, ms_p90: null, ms_mean: null,
               images_per_s: null, bytes_p50: null };
// Report a failure as the JSON line (even one thrown asynchronously inside a library) instead of a number.
function fail(err) {
  console.log(JSON.stringify({ ...base, note: `FAILED: ${err?.stack?.split('\n').slice(0, 2).join(' | ') ?? err}` }));
  process.exit(1);
}
process.on('uncaughtException', fail).on('unhandledRejection', fail);

async function main() {
  const setup = await SETUPS[name]();
  base.version = setup.version;
  for (let i = 0; i < WARMUP; i++) checkPng(await setup.render(`${TITLE} (warm-up ${i + 1})`), 'warm-up');
  const ms = [], bytes = [];
  let first;
  const wall0 = performance.now();
  for (let i = 0; i < ITER; i++) {
    const title = `${TITLE} #${i + 1}`; // distinct text every time: no cache can help
    const t0 = performance.now();
    const png = await setup.render(title);
    ms.push(performance.now() - t0);
    const b = checkPng(png, `iteration ${i + 1}`);
    bytes.push(b.length);
    first ??= b;
  }
  const wall = performance.now() - wall0;
  mkdirSync(args.out, { recursive: true });
  writeFileSync(join(args.out, `${name}.png`), first);
  const sorted = [...ms].sort((a, b) => a - b);
  console.log(JSON.stringify({
    ...base,
    ms_p50: r2(pct(sorted, 0.5)),
    ms_p90: r2(pct(sorted, 0.9)),
    ms_mean: r2(ms.reduce((a, b) => a + b, 0) / ms.length),
    images_per_s: r2(ITER / (wall / 1000)),
    bytes_p50: Math.round(pct([...bytes].sort((a, b) => a - b), 0.5)),
    note: `${setup.note}; emoji left out (satori fetches emoji from a CDN); title fixed at 72px, ` +
          `no font-feature-settings cv11/ss01; Node ${process.version}, sequential, warm-up ${WARMUP}`,
  }));
}

main().catch(fail);
