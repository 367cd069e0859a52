using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Chainwalk.Engine;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Tracing;

/// <summary>
/// One packet's result as one JSON object on one line (the README documents the fields): <c>fate</c>,
/// <c>outputs</c>, <c>ctstate</c>, <c>log</c>, <c>trace</c>, <c>route</c>, <c>changes</c>. Field names are stable.
/// </summary>
public static class TraceJson
{
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Render(PacketResult r, int number, double now = 0)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, Options))
        {
            w.WriteStartObject();
            w.WriteNumber("packet", number);
            if (r.Local) w.WriteBoolean("local", true);
            else w.WriteString("in", r.InputInterface);
            w.WriteString("summary", ExplainTree.Describe(r.Input));
            if (r.Input is not null) w.WriteString("hex", Convert.ToHexStringLower(r.Input));
            w.WriteStartArray("fate");
            foreach (string f in r.Fate) w.WriteStringValue(f);
            w.WriteEndArray();
            // Always present (null when there is none): every packet object has the same fields (docs/json.md).
            JsonLines.StringOrNull(w, "reason", r.DropReason);
            JsonLines.StringOrNull(w, "error", r.Error);
            w.WriteStartArray("outputs");
            foreach (OutputPacket o in r.Outputs)
            {
                w.WriteStartObject();
                w.WriteString("iface", o.Interface);
                w.WriteString("kind", o.Kind);
                w.WriteString("summary", ExplainTree.Describe(o.Bytes));
                w.WriteString("hex", Convert.ToHexStringLower(o.Bytes));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (r.CtState is not null) w.WriteString("ctstate", r.CtState);
            else w.WriteNull("ctstate");
            ConnectionExplainer.WriteJson(w, r.Connection, now);
            w.WriteStartArray("log");
            foreach (string l in r.Logs) w.WriteStringValue(l);
            w.WriteEndArray();
            if (r.Trace is not null)
            {
                w.WriteStartArray("route");
                foreach (TraceEvent e in r.Trace)
                {
                    if (e is RouteEvent re) w.WriteStringValue(re.Decision);
                }
                w.WriteEndArray();
                w.WriteStartArray("changes");
                foreach (TraceEvent e in r.Trace)
                {
                    if (e is ChangeEvent c)
                    {
                        w.WriteStartObject();
                        w.WriteString("table", c.Table);
                        w.WriteString("chain", c.Chain);
                        w.WriteNumber("rule", c.Rule);
                        w.WriteString("what", c.What);
                        w.WriteEndObject();
                    }
                }
                w.WriteEndArray();
                WriteTrace(w, r.Trace);
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteTrace(Utf8JsonWriter w, List<TraceEvent> events)
    {
        w.WriteStartArray("trace");
        Hook hook = Hook.Prerouting;
        bool generated = false;
        foreach (TraceEvent e in events)
        {
            switch (e)
            {
                case HookEvent h:
                    hook = h.Hook;
                    break;
                case GeneratedEvent:
                    generated = true;
                    break;
                case GeneratedEndEvent:
                    generated = false;
                    break;
                case RuleEvent re:
                    w.WriteStartObject();
                    w.WriteString("hook", hook.ChainName());
                    w.WriteString("table", re.Table);
                    w.WriteString("chain", re.Chain);
                    w.WriteNumber("rule", re.Number);
                    w.WriteString("text", ExplainTree.RuleText(re.Rule));
                    w.WriteBoolean("matched", re.Matched);
                    if (!re.Matched && re.FailedPart is { Length: > 0 } part) w.WriteString("failed", part);
                    if (re.Verdict is not null) w.WriteString("verdict", re.Verdict);
                    else w.WriteNull("verdict");
                    if (generated) w.WriteBoolean("generated", true);
                    w.WriteEndObject();
                    break;
                case ChainEndEvent ce:
                    w.WriteStartObject();
                    w.WriteString("hook", hook.ChainName());
                    w.WriteString("table", ce.Table);
                    w.WriteString("chain", ce.Chain);
                    w.WriteString("rule", ce.IsPolicy ? "policy" : "return");
                    w.WriteString("text", ce.IsPolicy ? "policy " + ce.Verdict : "end of chain");
                    w.WriteBoolean("matched", true);
                    w.WriteString("verdict", ce.Verdict);
                    if (generated) w.WriteBoolean("generated", true);
                    w.WriteEndObject();
                    break;
            }
        }
        w.WriteEndArray();
    }
}
