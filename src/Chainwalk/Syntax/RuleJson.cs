using System.Globalization;
using System.Text;
using System.Text.Json;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Syntax;

/// <summary>
/// Chains and rules as JSON Lines objects (docs/json.md, "iptables"): what <c>-S</c>, <c>-L</c> and
/// <c>iptables-save</c> print, one <c>{"type":"chain",…}</c> or <c>{"type":"rule",…}</c> object per line, with the
/// counters always present and the rule's save text in <c>text</c>.
/// </summary>
public static class RuleJson
{
    /// <summary>The names <c>family</c> takes: nft's family names, as <c>conntrack -o extended</c> prints them.</summary>
    public static string FamilyName(IpFamily family) => family == IpFamily.V4 ? "ipv4" : "ipv6";

    /// <summary>Every chain object, then every rule object, in the table's order (iptables-save's order).</summary>
    public static void WriteTable(JsonLines json, Table t, NameDb names, StringBuilder scratch)
    {
        Dictionary<string, int> refs = References(t);
        foreach (Chain c in t.Chains) WriteChain(json, t, c, refs);
        foreach (Chain c in t.Chains)
        {
            for (int i = 0; i < c.Rules.Count; i++) WriteRule(json, t, c, c.Rules[i], i + 1, names, scratch);
        }
    }

    /// <summary>Jumps and gotos to each user chain, counted in one pass (what -L's "(N references)" says).</summary>
    public static Dictionary<string, int> References(Table t)
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Chain c in t.Chains)
        {
            foreach (Rule r in c.Rules)
            {
                if (r.Target is { IsChainJump: true } target) d[target.Name] = d.TryGetValue(target.Name, out int n) ? n + 1 : 1;
            }
        }
        return d;
    }

    /// <summary>
    /// <c>{"type":"chain","family","table","chain","builtin","policy","packets","bytes","references","rules"}</c>:
    /// policy and its counters are null for a user chain (it has neither).
    /// </summary>
    public static void WriteChain(JsonLines json, Table t, Chain c, Dictionary<string, int> refs)
    {
        Utf8JsonWriter w = json.Begin();
        w.WriteString("type", "chain");
        w.WriteString("family", FamilyName(t.Family));
        w.WriteString("table", t.Name);
        w.WriteString("chain", c.Name);
        w.WriteBoolean("builtin", c.IsBuiltin);
        if (c.IsBuiltin)
        {
            JsonLines.StringOrNull(w, "policy", c.Policy);
            w.WriteNumber("packets", c.Counters.Packets);
            w.WriteNumber("bytes", c.Counters.Bytes);
        }
        else
        {
            w.WriteNull("policy");
            w.WriteNull("packets");
            w.WriteNull("bytes");
        }
        w.WriteNumber("references", refs.TryGetValue(c.Name, out int n) ? n : 0);
        w.WriteNumber("rules", c.Rules.Count);
        json.End();
    }

    /// <summary>
    /// <c>{"type":"rule","family","table","chain","position","protocol","source","destination","in_interface",
    /// "out_interface","fragment","inverted","matches","target","packets","bytes","text"}</c>.
    /// </summary>
    public static void WriteRule(JsonLines json, Table t, Chain c, Rule r, int position, NameDb names, StringBuilder scratch)
    {
        Utf8JsonWriter w = json.Begin();
        w.WriteString("type", "rule");
        w.WriteString("family", FamilyName(t.Family));
        w.WriteString("table", t.Name);
        w.WriteString("chain", c.Name);
        w.WriteNumber("position", position);
        if (r.Protocol == 0) w.WriteNull("protocol");
        else w.WriteString("protocol", Protocols.Name(r.Protocol, names) ?? r.Protocol.ToString(CultureInfo.InvariantCulture));
        Address(w, "source", r.Source, r.SourceInverted);
        Address(w, "destination", r.Destination, r.DestinationInverted);
        Interface(w, "in_interface", r.InInterface, r.InInverted);
        Interface(w, "out_interface", r.OutInterface, r.OutInverted);
        w.WriteBoolean("fragment", r.Fragment);
        // The negated parts (iptables' "!"), by field name: ["source", "protocol"] for "! -s X ! -p tcp".
        w.WriteStartArray("inverted");
        if (r.SourceInverted) w.WriteStringValue("source");
        if (r.DestinationInverted) w.WriteStringValue("destination");
        if (r.InInverted) w.WriteStringValue("in_interface");
        if (r.OutInverted) w.WriteStringValue("out_interface");
        if (r.ProtocolInverted && r.Protocol > 0) w.WriteStringValue("protocol");
        if (r.FragmentInverted && r.Fragment) w.WriteStringValue("fragment");
        w.WriteEndArray();
        w.WriteStartArray("matches");
        foreach (MatchUse m in r.Matches)
        {
            if (m.Extension.HiddenInListing(m.Data)) continue;
            scratch.Clear();
            m.Extension.Save(scratch, m.Data, r.Family);
            w.WriteStartObject();
            w.WriteString("name", m.Extension.SaveName(m.Data));
            w.WriteString("options", Trimmed(scratch));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (r.Target is { } target && (target.Extension is not null || target.Name.Length > 0))
        {
            w.WriteStartObject("target");
            scratch.Clear();
            if (target.Extension is not null)
            {
                w.WriteString("name", target.Extension.SaveName(target.Data!));
                target.Extension.Save(scratch, target.Data!, r.Family);
            }
            else
            {
                w.WriteString("name", target.Name);
            }
            w.WriteBoolean("goto", target.Goto);
            w.WriteString("options", Trimmed(scratch));
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("target");
        }
        w.WriteNumber("packets", r.Counters.Packets);
        w.WriteNumber("bytes", r.Counters.Bytes);
        scratch.Clear();
        scratch.Append("-A ").Append(c.Name);
        RuleWriter.AppendSaveBody(scratch, r, names, inlineCounters: false);
        w.WriteString("text", scratch.ToString());
        json.End();
    }

    private static string Trimmed(StringBuilder sb)
    {
        int start = 0;
        while (start < sb.Length && sb[start] == ' ') start++;
        return sb.ToString(start, sb.Length - start);
    }

    private static void Address(Utf8JsonWriter w, string name, IpNet net, bool inverted)
    {
        // As the save form: 0.0.0.0/0 (any) is left out there and null here, unless negated.
        if (net.Mask == UInt128.Zero && !inverted && net.Address == UInt128.Zero) w.WriteNull(name);
        else w.WriteString(name, net.SaveText);
    }

    private static void Interface(Utf8JsonWriter w, string name, string iface, bool inverted)
    {
        if (iface.Length == 0 || (iface == "+" && !inverted)) w.WriteNull(name);
        else w.WriteString(name, iface);
    }
}
