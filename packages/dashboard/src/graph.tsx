/**
 * Function → package → destination, in three columns of an SVG drawn by hand: an edge is red when anything
 * along it was blocked, amber when it was only alerted, and wider the more often it happened. Clicking a
 * function or a package filters the event table to it.
 */
import type { Summary } from './api.js';

type Edge = Summary['edges'][number];
interface Count {
  blocked: number;
  alerted: number;
  other: number;
}
interface Node extends Count {
  name: string;
  y: number;
  /** Set on the "+N more" node that stands for the quieter rest of a long column. */
  more?: number;
}
type Kind = 'function' | 'package' | 'destination';

const COLUMNS: Array<{ kind: Kind; title: string; x: number; width: number }> = [
  { kind: 'function', title: 'Functions', x: 0, width: 190 },
  { kind: 'package', title: 'Packages', x: 330, width: 200 },
  { kind: 'destination', title: 'Destinations', x: 670, width: 290 },
];
const WIDTH = 960;
const ROW = 30;
const NODE_HEIGHT = 22;
const TOP = 30;
/** Beyond this many nodes a column shows the busiest and one "+N more" node, so the picture stays readable. */
const MAX_NODES = 24;

export function Graph(props: { edges: Edge[]; onFunction(name: string): void; onPackage(name: string): void }) {
  const layout = layoutGraph(props.edges);
  const rows = Math.max(3, ...layout.columns.map((nodes) => nodes.length));
  const height = TOP + rows * ROW;
  if (props.edges.length === 0) {
    return (
      <div class="graph empty" data-testid="graph">
        <p>No violations yet: nothing has tried to reach beyond its policy.</p>
      </div>
    );
  }
  const activate = (kind: Kind, name: string) => {
    if (kind === 'function') props.onFunction(name);
    else if (kind === 'package') props.onPackage(name);
  };
  return (
    <div class="graph" data-testid="graph">
      <svg
        viewBox={`0 0 ${WIDTH} ${height}`}
        width="100%"
        role="img"
        aria-label={`Graph of ${layout.columns[0]!.length} function(s), ${layout.columns[1]!.length} package(s) and ${layout.columns[2]!.length} destination(s)`}
      >
        {COLUMNS.map((column) => (
          <text class="column-title" x={column.x} y={14} key={column.kind}>
            {column.title}
          </text>
        ))}
        {layout.links.map((link) => {
          const from = COLUMNS[link.column]!;
          const to = COLUMNS[link.column + 1]!;
          const x1 = from.x + from.width;
          const x2 = to.x;
          const middle = (x1 + x2) / 2;
          const y1 = link.from.y + NODE_HEIGHT / 2;
          const y2 = link.to.y + NODE_HEIGHT / 2;
          const total = link.blocked + link.alerted + link.other;
          const colour = link.blocked > 0 ? 'blocked' : link.alerted > 0 ? 'alerted' : 'other';
          return (
            <path
              key={`${link.column}:${key(link.from)}:${key(link.to)}`}
              data-testid="graph-edge"
              data-kind={colour}
              class={`edge ${colour}`}
              d={`M${x1},${y1} C${middle},${y1} ${middle},${y2} ${x2},${y2}`}
              stroke-width={Math.min(12, 1.5 + Math.log2(total + 1) * 1.5)}
            >
              <title>{`${label(link.from)} → ${label(link.to)}: ${link.blocked} blocked, ${link.alerted} alerted`}</title>
            </path>
          );
        })}
        {COLUMNS.map((column, index) =>
          layout.columns[index]!.map((node) => {
            const interactive = column.kind !== 'destination' && node.more === undefined;
            const state = node.blocked > 0 ? 'blocked' : node.alerted > 0 ? 'alerted' : 'other';
            const text = `${label(node)}: ${node.blocked} blocked, ${node.alerted} alerted`;
            const common = {
              class: `node ${state}${interactive ? ' interactive' : ''}`,
              'data-testid': 'graph-node',
              'data-kind': column.kind,
              'data-name': node.name,
              transform: `translate(${column.x},${node.y})`,
            };
            const body = (
              <>
                <title>{text}</title>
                <rect width={column.width} height={NODE_HEIGHT} rx={4} />
                <text x={8} y={15}>
                  {truncate(label(node), Math.floor(column.width / 7.2))}
                </text>
              </>
            );
            if (!interactive) {
              return (
                <g key={`${column.kind}:${key(node)}`} {...common} aria-label={text}>
                  {body}
                </g>
              );
            }
            return (
              // biome-ignore lint/a11y/useSemanticElements: SVG has no <button>; a focusable <g role="button"> is its equivalent
              <g
                key={`${column.kind}:${key(node)}`}
                {...common}
                tabindex={0}
                role="button"
                aria-label={`Show the events of ${column.kind} ${node.name}`}
                onClick={() => activate(column.kind, node.name)}
                onKeyDown={(event) => {
                  if (event.key === 'Enter' || event.key === ' ') {
                    event.preventDefault();
                    activate(column.kind, node.name);
                  }
                }}
              >
                {body}
              </g>
            );
          }),
        )}
      </svg>
    </div>
  );
}

interface Link extends Count {
  column: number;
  from: Node;
  to: Node;
}

function layoutGraph(edges: Edge[]): { columns: Node[][]; links: Link[] } {
  const totals: Array<Map<string, Count>> = [new Map(), new Map(), new Map()];
  for (const edge of edges) {
    add(totals[0]!, edge.function, edge);
    add(totals[1]!, edge.package, edge);
    add(totals[2]!, edge.destination, edge);
  }
  const columns = totals.map((counts) => placeColumn(counts));
  const index = columns.map((nodes) => new Map(nodes.filter((n) => n.more === undefined).map((n) => [n.name, n])));
  const nodeOf = (column: number, name: string) =>
    index[column]!.get(name) ?? columns[column]!.find((node) => node.more !== undefined)!;

  const pairs = new Map<string, Link>();
  for (const edge of edges) {
    const names = [edge.function, edge.package, edge.destination];
    for (let column = 0; column < 2; column++) {
      const from = nodeOf(column, names[column]!);
      const to = nodeOf(column + 1, names[column + 1]!);
      const id = `${column}:${key(from)}:${key(to)}`;
      const link = pairs.get(id) ?? { column, from, to, blocked: 0, alerted: 0, other: 0 };
      link.blocked += edge.blocked;
      link.alerted += edge.alerted;
      pairs.set(id, link);
    }
  }
  // Amber first, red on top: a blocked edge is never hidden under an alerted one.
  const links = [...pairs.values()].sort((a, b) => Number(a.blocked > 0) - Number(b.blocked > 0));
  return { columns, links };
}

function add(map: Map<string, Count>, name: string, edge: Edge): void {
  const count = map.get(name) ?? { blocked: 0, alerted: 0, other: 0 };
  count.blocked += edge.blocked;
  count.alerted += edge.alerted;
  map.set(name, count);
}

/** The busiest nodes first; past MAX_NODES, the rest folded into one "+N more" node. */
function placeColumn(counts: Map<string, Count>): Node[] {
  const weight = (count: Count) => count.blocked * 2 + count.alerted + count.other;
  const names = [...counts.keys()].sort(
    (a, b) => weight(counts.get(b)!) - weight(counts.get(a)!) || a.localeCompare(b),
  );
  const shown = names.length <= MAX_NODES ? names : names.slice(0, MAX_NODES - 1);
  const nodes: Node[] = shown.map((name, row) => ({ name, y: TOP + row * ROW, ...counts.get(name)! }));
  if (shown.length < names.length) {
    const rest: Node = {
      name: '',
      y: TOP + shown.length * ROW,
      more: names.length - shown.length,
      blocked: 0,
      alerted: 0,
      other: 0,
    };
    for (const name of names.slice(shown.length)) {
      rest.blocked += counts.get(name)!.blocked;
      rest.alerted += counts.get(name)!.alerted;
    }
    nodes.push(rest);
  }
  return nodes;
}

function key(node: Node): string {
  return node.more === undefined ? `=${node.name}` : '+more';
}

function label(node: Node): string {
  return node.more === undefined ? node.name : `+${node.more} more`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
