using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Rules;
using Chainwalk.Tracing;

namespace Chainwalk.Pictures;

/// <summary>
/// The netfilter packet-flow picture (hooks and their tables in the kernel's order, the routing decisions, the local
/// process) with one packet's way drawn over it: the hooks it passed, each table's verdict and the deciding rule,
/// NAT changes beside the hook that made them, and its fate. A rendering of the trace events.
/// </summary>
public static class FlowDiagram
{
    private sealed record Box(string Name, double X, double Y, string[] Rows);

    private const double BoxWidth = 230, RowHeight = 17, HeaderHeight = 24;

    private static readonly Dictionary<Hook, Box> Hooks = new()
    {
        [Hook.Prerouting] = new("PREROUTING", 170, 70, ["raw", "conntrack", "mangle", "nat (DNAT)"]),
        [Hook.Input] = new("INPUT", 330, 300, ["mangle", "filter", "nat (SNAT)", "security"]),
        [Hook.Forward] = new("FORWARD", 525, 70, ["mangle", "filter", "security"]),
        [Hook.Output] = new("OUTPUT", 640, 300, ["raw", "conntrack", "mangle", "nat (DNAT)", "filter", "security"]),
        [Hook.Postrouting] = new("POSTROUTING", 830, 70, ["mangle", "nat (SNAT)"]),
    };

    private const string Path = "#d9480f", Idle = "#adb5bd", Accept = "#2b8a3e", Drop = "#c92a2a", Visit = "#1c7ed6";

    private static double Height(Box b) => HeaderHeight + b.Rows.Length * RowHeight + 8;

    private static (double X, double Y) Left(Box b) => (b.X, b.Y + Height(b) / 2);

    private static (double X, double Y) Right(Box b) => (b.X + BoxWidth, b.Y + Height(b) / 2);

    /// <summary>The SVG picture of one packet's result (its trace must have been recorded).</summary>
    public static string Render(PacketResult r)
    {
        var svg = new Svg(1260, 560);
        List<TraceEvent> events = r.Trace ?? [];
        // The packet's own hooks, in order (not those of the replies it caused).
        var visited = new List<Hook>();
        var outcome = new Dictionary<(Hook, string), (string Text, string Color)>();
        var changes = new Dictionary<Hook, List<string>>();
        var ctNotes = new Dictionary<Hook, string>();
        int generated = 0;
        Hook current = Hook.Prerouting;
        string? table = null;
        var replies = new List<string>();
        foreach (TraceEvent e in events)
        {
            switch (e)
            {
                case GeneratedEvent g:
                    generated++;
                    replies.Add(g.What);
                    continue;
                case GeneratedEndEvent ge:
                    generated--;
                    if (replies.Count > 0) replies[^1] += " → " + ge.Fate;
                    continue;
            }
            if (generated > 0) continue;
            switch (e)
            {
                case HookEvent h:
                    current = h.Hook;
                    if (visited.Count == 0 || visited[^1] != h.Hook) visited.Add(h.Hook);
                    break;
                case TableEvent t:
                    table = t.Table;
                    outcome[(current, t.Table)] = ("visited", Visit);
                    break;
                case RuleEvent re when re.Matched && table is not null && re.Verdict is { } v
                    && !v.StartsWith("jump", StringComparison.Ordinal) && !v.StartsWith("goto", StringComparison.Ordinal) && !v.StartsWith("CONTINUE", StringComparison.Ordinal) && v != "RETURN":
                    {
                        string what = re.Rule.Target is { Extension: not null } t ? t.Name : Short(v);
                        bool passes = v.StartsWith("ACCEPT", StringComparison.Ordinal);
                        outcome[(current, table)] = ($"{re.Chain} rule {re.Number.ToString(CultureInfo.InvariantCulture)}: {what}", passes ? Accept : Drop);
                    }
                    break;
                case ChainEndEvent ce when ce.IsPolicy && table is not null:
                    outcome[(current, table)] = ($"policy {ce.Verdict}", ce.Verdict == "DROP" ? Drop : Accept);
                    break;
                case ChangeEvent c:
                    (changes.TryGetValue(current, out var list) ? list : changes[current] = new()).Add(c.What);
                    break;
                case NoteEvent n when n.Text.StartsWith("conntrack (", StringComparison.Ordinal):
                    ctNotes[current] = n.Text[(n.Text.IndexOf(':', StringComparison.Ordinal) + 2)..];
                    break;
            }
        }

        svg.Text(20, 28, "chainwalk trace: " + ExplainTree.Describe(r.Input) + (r.Local ? " (sent by a local process)" : $" (in {r.InputInterface})"), 14, "#111", weight: "bold");

        // The fixed parts: the wire on each side, the routing decisions, the local process.
        double midIn = Left(Hooks[Hook.Prerouting]).Y;
        Node(svg, 20, midIn - 22, 120, 44, r.Local ? "network" : "in: " + r.InputInterface, !r.Local);
        Node(svg, 1110, midIn - 22, 130, 44, "out: " + OutInterface(r), r.Fate.Exists(f => f.StartsWith("forwarded", StringComparison.Ordinal) || f.StartsWith("sent", StringComparison.Ordinal)));
        Node(svg, 370, 470, 150, 44, "local process", r.Local || r.Fate.Contains("delivered-local"));
        Diamond(svg, 445, midIn, "routing", visited.Contains(Hook.Input) || visited.Contains(Hook.Forward));
        Diamond(svg, 600, 492, "routing", r.Local);

        bool Went(Hook a, Hook b)
        {
            int i = visited.IndexOf(a);
            return i >= 0 && i + 1 < visited.Count && visited[i + 1] == b;
        }

        // Edges (drawn under the boxes).
        Box pre = Hooks[Hook.Prerouting], inp = Hooks[Hook.Input], fwd = Hooks[Hook.Forward], outp = Hooks[Hook.Output], post = Hooks[Hook.Postrouting];
        Edge(svg, 140, midIn, pre.X, midIn, !r.Local);
        Edge(svg, Right(pre).X, midIn, 405, midIn, visited.Contains(Hook.Prerouting) && (visited.Contains(Hook.Input) || visited.Contains(Hook.Forward)));
        Edge(svg, 485, midIn, fwd.X, midIn, visited.Contains(Hook.Forward), label: "forward");
        Edge(svg, 445, midIn + 22, 445, inp.Y, Went(Hook.Prerouting, Hook.Input), label: "for this host");
        Edge(svg, Right(fwd).X, midIn, post.X, midIn, Went(Hook.Forward, Hook.Postrouting));
        Edge(svg, Right(post).X, midIn, 1110, midIn, r.Fate.Exists(f => f.StartsWith("forwarded", StringComparison.Ordinal) || f.StartsWith("sent", StringComparison.Ordinal)));
        Edge(svg, inp.X + BoxWidth / 2, inp.Y + Height(inp), 445, 470, r.Fate.Contains("delivered-local") && visited.Contains(Hook.Input));
        Edge(svg, 520, 492, 560, 492, r.Local);
        Edge(svg, 640, 492, outp.X + BoxWidth / 2, outp.Y + Height(outp), r.Local);
        Edge(svg, outp.X + BoxWidth / 2, outp.Y, post.X + BoxWidth / 2, post.Y + Height(post), Went(Hook.Output, Hook.Postrouting));

        foreach (var (hook, box) in Hooks)
        {
            bool on = visited.Contains(hook);
            svg.Rect(box.X, box.Y, BoxWidth, Height(box), on ? "#fff4e6" : "#f8f9fa", on ? Path : Idle, on ? 2.5 : 1);
            svg.Text(box.X + 10, box.Y + 17, box.Name, 13, on ? "#111" : "#868e96", weight: "bold");
            for (int i = 0; i < box.Rows.Length; i++)
            {
                string row = box.Rows[i];
                string tableName = row.Split(' ')[0];
                double y = box.Y + HeaderHeight + i * RowHeight + 12;
                string text = row;
                string color = on ? "#495057" : "#adb5bd";
                if (tableName == "conntrack" && ctNotes.TryGetValue(hook, out string? ct))
                {
                    text = "conntrack: " + Clip(ct, 30);
                    color = Visit;
                }
                else if (outcome.TryGetValue((hook, tableName), out var o))
                {
                    text = tableName + ": " + Clip(o.Text, 28);
                    color = o.Color;
                }
                svg.Text(box.X + 14, y, text, 11, color);
            }
            if (changes.TryGetValue(hook, out var ch))
            {
                double y = box.Y + Height(box) + 14;
                foreach (string c in ch.Take(4))
                {
                    svg.Text(box.X + 4, y, "✎ " + Clip(c, 44), 10.5, "#862e9c");
                    y += 13;
                }
            }
        }

        var fate = new StringBuilder("fate: ").Append(string.Join(", ", r.Fate));
        if (r.DropReason is not null) fate.Append(" (").Append(r.DropReason).Append(')');
        svg.Text(20, 540, Clip(fate.ToString(), 120), 14, r.Fate.Exists(f => f.StartsWith("dropped", StringComparison.Ordinal) || f.StartsWith("rejected", StringComparison.Ordinal)) ? Drop : Accept, weight: "bold");
        double ry = 470;
        foreach (string reply in replies.Take(3))
        {
            svg.Text(860, ry, "the host sends " + Clip(reply, 40), 11, "#5f3dc4");
            ry += 15;
        }
        return svg.ToString();
    }

    private static string OutInterface(PacketResult r)
    {
        foreach (string f in r.Fate)
        {
            int colon = f.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && f[..colon] is "forwarded" or "sent") return f[(colon + 1)..];
        }
        return "network";
    }

    private static string Short(string verdict) => verdict.Length > 24 ? verdict[..24] + "…" : verdict;

    private static string Clip(string s, int max) => s.Length > max ? s[..(max - 1)] + "…" : s;

    private static void Node(Svg svg, double x, double y, double w, double h, string label, bool on)
    {
        svg.Rect(x, y, w, h, on ? "#e7f5ff" : "#f8f9fa", on ? Path : Idle, on ? 2 : 1, 20);
        svg.Text(x + w / 2, y + h / 2 + 4, label, 12, on ? "#111" : "#868e96", "middle");
    }

    private static void Diamond(Svg svg, double cx, double cy, string label, bool on)
    {
        string d = string.Create(CultureInfo.InvariantCulture, $"M {cx - 40} {cy} L {cx} {cy - 22} L {cx + 40} {cy} L {cx} {cy + 22} Z");
        svg.Path(d, on ? Path : Idle, on ? 2 : 1, arrow: false);
        svg.Text(cx, cy + 4, label, 11, on ? "#111" : "#868e96", "middle");
    }

    private static void Edge(Svg svg, double x1, double y1, double x2, double y2, bool on, string? label = null)
    {
        svg.Line(x1, y1, x2, y2, on ? Path : Idle, on ? 3 : 1.2);
        if (label is not null) svg.Text((x1 + x2) / 2 + 6, (y1 + y2) / 2, label, 10, on ? Path : "#adb5bd");
    }

    /// <summary>An HTML page: the picture and the explanation tree under it.</summary>
    public static string Html(PacketResult r) =>
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>chainwalk trace</title>\n"
        + "<style>body{font-family:sans-serif;margin:16px} pre{background:#f8f9fa;padding:12px;font-size:12px;overflow:auto}</style></head><body>\n"
        + Render(r) + "<pre>" + Svg.Escape(ExplainTree.Render(r)) + "</pre>\n</body></html>\n";
}
