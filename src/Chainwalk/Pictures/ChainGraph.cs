using System.Globalization;
using System.Text;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Pictures;

/// <summary>
/// The chain graph of a table: built-in and user chains as boxes in columns by depth (how many jumps from a
/// built-in chain), jumps and gotos (dashed) as arrows labelled with the rule number and its packet counter.
/// SVG (laid out here) or Graphviz DOT. A kube-proxy node's hundreds of chains stay readable: one column per depth,
/// chains sorted by name.
/// </summary>
public static class ChainGraph
{
    private const double NodeWidth = 330, NodeHeight = 36, ColumnGap = 110, RowGap = 10, Margin = 24;

    private sealed record Edge(Chain From, Chain To, int Rule, bool Goto, ulong Packets);

    private static List<Edge> Edges(Table t)
    {
        var edges = new List<Edge>();
        foreach (Chain c in t.Chains)
        {
            for (int i = 0; i < c.Rules.Count; i++)
            {
                if (c.Rules[i].Target is { IsChainJump: true } target && t.Find(target.Name) is { } to)
                    edges.Add(new Edge(c, to, i + 1, target.Goto, c.Rules[i].Counters.Packets));
            }
        }
        return edges;
    }

    /// <summary>Depth of each chain: 0 for built-in chains, the longest jump path from one for the others; unreachable chains get -1.</summary>
    private static Dictionary<Chain, int> Levels(Table t, List<Edge> edges)
    {
        var level = new Dictionary<Chain, int>(ReferenceEqualityComparer.Instance);
        var queue = new Queue<Chain>();
        foreach (Chain b in t.BuiltinChains)
        {
            level[b] = 0;
            queue.Enqueue(b);
        }
        var outgoing = new Dictionary<Chain, List<Edge>>(ReferenceEqualityComparer.Instance);
        foreach (Edge e in edges)
        {
            if (!outgoing.TryGetValue(e.From, out List<Edge>? l)) outgoing[e.From] = l = new List<Edge>();
            l.Add(e);
        }
        while (queue.Count > 0)
        {
            Chain c = queue.Dequeue();
            if (!outgoing.TryGetValue(c, out var outs)) continue;
            foreach (Edge e in outs)
            {
                int l = level[c] + 1;
                if (l > 64) continue;
                if (!level.TryGetValue(e.To, out int old) || old < l)
                {
                    level[e.To] = l;
                    queue.Enqueue(e.To);
                }
            }
        }
        foreach (Chain c in t.Chains) level.TryAdd(c, -1);
        return level;
    }

    private static string Caption(Chain c) =>
        c.IsBuiltin
            ? $"{c.Rules.Count} rules · policy {c.Policy ?? "ACCEPT"} · {c.Counters.Packets.ToString(CultureInfo.InvariantCulture)} pkts"
            : $"{c.Rules.Count} rules";

    public static string Svg(Table t)
    {
        List<Edge> edges = Edges(t);
        Dictionary<Chain, int> level = Levels(t, edges);
        var columns = level.GroupBy(kv => kv.Value < 0 ? int.MaxValue : kv.Value).OrderBy(g => g.Key).ToList();
        var pos = new Dictionary<Chain, (double X, double Y)>(ReferenceEqualityComparer.Instance);
        int col = 0;
        int maxRows = 0;
        foreach (var g in columns)
        {
            var chains = g.Select(kv => kv.Key).OrderBy(c => c.IsBuiltin ? 0 : 1).ThenBy(c => c.IsBuiltin ? HookOrder(c.Name) : 0).ThenBy(c => c.Name, StringComparer.Ordinal).ToList();
            for (int i = 0; i < chains.Count; i++)
                pos[chains[i]] = (Margin + col * (NodeWidth + ColumnGap), Margin + 40 + i * (NodeHeight + RowGap));
            maxRows = Math.Max(maxRows, chains.Count);
            col++;
        }
        var svg = new Svg(Margin * 2 + Math.Max(1, col) * (NodeWidth + ColumnGap) - ColumnGap, Margin * 2 + 40 + maxRows * (NodeHeight + RowGap));
        svg.Text(Margin, Margin + 14, $"{(t.Family == IpFamily.V6 ? "ip6tables" : "iptables")} -t {t.Name}: {t.Chains.Count()} chains, {t.RuleCount} rules, {edges.Count} jumps", 15, "#111", weight: "bold");
        foreach (Edge e in edges)
        {
            var (x1, y1) = pos[e.From];
            var (x2, y2) = pos[e.To];
            x1 += NodeWidth;
            y1 += NodeHeight / 2;
            y2 += NodeHeight / 2;
            string color = e.Packets > 0 ? "#d9480f" : (e.Goto ? "#5f3dc4" : "#868e96");
            string d = x2 > x1
                ? string.Create(CultureInfo.InvariantCulture, $"M {x1:0.#} {y1:0.#} C {x1 + ColumnGap / 2:0.#} {y1:0.#}, {x2 - ColumnGap / 2:0.#} {y2:0.#}, {x2:0.#} {y2:0.#}")
                : string.Create(CultureInfo.InvariantCulture, $"M {x1:0.#} {y1:0.#} C {x1 + 60:0.#} {y1 - 80:0.#}, {x2 - 60:0.#} {y2 - 80:0.#}, {x2:0.#} {y2:0.#}");
            string label = $"{e.From.Name} rule {e.Rule}{(e.Goto ? " (goto)" : "")} → {e.To.Name}: {e.Packets.ToString(CultureInfo.InvariantCulture)} pkts";
            svg.Path(d, color, e.Packets > 0 ? 2 : 1, title: label);
        }
        foreach (var (c, (x, y)) in pos)
        {
            bool hot = c.IsBuiltin ? c.Counters.Packets > 0 || c.Rules.Any(r => r.Counters.Packets > 0) : c.Rules.Any(r => r.Counters.Packets > 0);
            svg.Rect(x, y, NodeWidth, NodeHeight, c.IsBuiltin ? "#e7f5ff" : level[c] < 0 ? "#fff5f5" : "#f8f9fa", hot ? "#d9480f" : "#495057", hot ? 2 : 1, 6,
                title: string.Join("\n", c.Rules.Select((r, i) => $"{i + 1}: {Chainwalk.Tracing.ExplainTree.RuleText(r)}").Take(40)));
            svg.Text(x + 8, y + 15, Clip(c.Name, 44), 12, "#111", weight: c.IsBuiltin ? "bold" : "normal", family: "monospace");
            svg.Text(x + 8, y + 29, level[c] < 0 ? Caption(c) + " · not reachable" : Caption(c), 10, "#495057");
        }
        // Rule numbers beside the jumps, at the source (drawn last to stay on top).
        foreach (var group in edges.GroupBy(e => e.From.Name, StringComparer.Ordinal))
        {
            var list = group.ToList();
            var (x, y) = pos[list[0].From];
            string nums = string.Join(",", list.Select(e => e.Rule.ToString(CultureInfo.InvariantCulture)).Take(6)) + (list.Count > 6 ? "…" : "");
            svg.Text(x + NodeWidth + 4, y + NodeHeight / 2 - 3, "#" + nums, 9, "#868e96");
        }
        return svg.ToString();
    }

    private static int HookOrder(string name) => HookNames.TryParse(name, out Hook h) ? (int)h : 9;

    private static string Clip(string s, int max) => s.Length > max ? s[..(max - 1)] + "…" : s;

    public static string Dot(Table t)
    {
        var sb = new StringBuilder();
        sb.Append("digraph \"").Append(t.Name).Append("\" {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
        foreach (Chain c in t.Chains)
        {
            sb.Append("  \"").Append(c.Name).Append("\" [label=\"").Append(c.Name).Append("\\n").Append(Caption(c)).Append('"');
            if (c.IsBuiltin) sb.Append(", style=filled, fillcolor=\"#e7f5ff\"");
            sb.Append("];\n");
        }
        foreach (Edge e in Edges(t))
        {
            sb.Append("  \"").Append(e.From.Name).Append("\" -> \"").Append(e.To.Name).Append("\" [label=\"").Append(e.Rule.ToString(CultureInfo.InvariantCulture));
            if (e.Packets > 0) sb.Append(" (").Append(e.Packets.ToString(CultureInfo.InvariantCulture)).Append(" pkts)");
            sb.Append('"');
            if (e.Goto) sb.Append(", style=dashed");
            sb.Append("];\n");
        }
        sb.Append("}\n");
        return sb.ToString();
    }

    /// <summary>
    /// The graph as JSON Lines (docs/json.md, "graph"): one <c>{"type":"node",…}</c> per chain (in the table's order,
    /// with its depth: 0 for built-in chains, -1 when no built-in chain reaches it), then one <c>{"type":"edge",…}</c>
    /// per jump or goto (in rule order), with the figures the DOT labels show.
    /// </summary>
    public static string Json(Table t)
    {
        List<Edge> edges = Edges(t);
        Dictionary<Chain, int> level = Levels(t, edges);
        var sw = new StringWriter(CultureInfo.InvariantCulture);
        using var json = new JsonLines(sw);
        string family = RuleJson.FamilyName(t.Family);
        foreach (Chain c in t.Chains)
        {
            System.Text.Json.Utf8JsonWriter w = json.Begin();
            w.WriteString("type", "node");
            w.WriteString("family", family);
            w.WriteString("table", t.Name);
            w.WriteString("chain", c.Name);
            w.WriteBoolean("builtin", c.IsBuiltin);
            JsonLines.StringOrNull(w, "policy", c.IsBuiltin ? c.Policy ?? "ACCEPT" : null);
            w.WriteNumber("depth", level[c]);
            w.WriteNumber("rules", c.Rules.Count);
            if (c.IsBuiltin) w.WriteNumber("packets", c.Counters.Packets);
            else w.WriteNull("packets");
            json.End();
        }
        foreach (Edge e in edges)
        {
            System.Text.Json.Utf8JsonWriter w = json.Begin();
            w.WriteString("type", "edge");
            w.WriteString("family", family);
            w.WriteString("table", t.Name);
            w.WriteString("from", e.From.Name);
            w.WriteString("to", e.To.Name);
            w.WriteNumber("rule", e.Rule);
            w.WriteBoolean("goto", e.Goto);
            w.WriteNumber("packets", e.Packets);
            json.End();
        }
        return sw.ToString();
    }

    /// <summary><c>chainwalk graph [-t TABLE] [-4|-6] [--svg|--dot|--json] [-o FILE]</c>.</summary>
    public static int Run(string[] args, HostStore store, ToolIo io)
    {
        string table = "filter";
        IpFamily family = IpFamily.V4;
        bool dot = false, json = false;
        string? outFile = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "-t" or "--table" when i + 1 < args.Length: table = args[++i]; break;
                case "-6": family = IpFamily.V6; break;
                case "-4": family = IpFamily.V4; break;
                case "--dot": dot = true; json = false; break;
                case "--svg": dot = false; json = false; break;
                case "--json": json = true; break;
                case "-o" when i + 1 < args.Length: outFile = args[++i]; break;
                default:
                    io.Err.WriteLine($"chainwalk graph: unknown option \"{args[i]}\"");
                    io.Err.WriteLine("Usage: chainwalk graph [-t TABLE] [-4|-6] [--svg|--dot|--json] [-o FILE]");
                    return 2;
            }
        }
        if (TableInfo.Find(table) is null)
        {
            io.Err.WriteLine($"chainwalk graph: no table \"{table}\" (raw, mangle, nat, filter, security)");
            return 2;
        }
        Ruleset rules = store.LoadRules(family);
        Table t = rules.Find(table) ?? new Table(TableInfo.Find(table)!, family);
        string text = json ? Json(t) : dot ? Dot(t) : Svg(t);
        if (outFile is null) io.Out.Write(text);
        else File.WriteAllText(outFile, text);
        return 0;
    }
}
