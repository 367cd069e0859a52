using System.Text.Json;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Tracing;

/// <summary>
/// Explains each conntrack lookup in the trace: a new connection or an existing one, the packet's direction,
/// and the state before and after (TCP state, SEEN_REPLY, ASSURED); and writes the <c>ct</c> object of the JSON.
/// </summary>
public sealed class ConnectionExplainer
{
    private readonly Dictionary<ConnEntry, string> _seen = new(ReferenceEqualityComparer.Instance);

    private ConnectionExplainer(ConntrackHooks hooks)
    {
        foreach (ConnEntry e in hooks.Table.Entries) _seen[e] = State(e);
    }

    /// <summary>Installs the explainer on a netfilter whose conntrack is loaded.</summary>
    public static void Attach(Netfilter nf)
    {
        if (nf.Conntrack is not ConntrackHooks hooks) return;
        var x = new ConnectionExplainer(hooks);
        nf.ConnectionExplainer = x.Explain;
    }

    private static string State(ConnEntry e)
    {
        var parts = new List<string>();
        if (e.TcpState is { } t) parts.Add(TcpTracker.Name(t));
        if (!e.Has(ConnStatus.SeenReply)) parts.Add("UNREPLIED");
        if (e.Has(ConnStatus.Assured)) parts.Add("ASSURED");
        return parts.Count == 0 ? "replied" : string.Join(' ', parts);
    }

    private void Explain(PacketContext ctx)
    {
        Skb skb = ctx.Skb;
        string hook = ctx.Hook.ChainName();
        if (skb.CtInfo == CtInfo.Untracked)
        {
            ctx.Note($"conntrack ({hook}): untracked (NOTRACK / CT --notrack in raw)");
            return;
        }
        if (!ConntrackHooks.TryGet(skb, out ConnEntry ct, out ConnDirection dir))
        {
            ctx.Note($"conntrack ({hook}): no connection for this packet: --ctstate INVALID");
            return;
        }
        string now = State(ct);
        string tuple = Tuple(ct.Original);
        string dirText = dir == ConnDirection.Original ? "original direction" : "reply direction";
        string state = Netfilter.CtStateName(skb.CtInfo);
        if (!_seen.TryGetValue(ct, out string? before))
        {
            ctx.Note($"conntrack ({hook}): new connection {tuple}, {state}, now {now}{(ct.IsConfirmed ? "" : " (confirmed when the packet leaves POSTROUTING/INPUT)")}");
        }
        else
        {
            ctx.Note($"conntrack ({hook}): existing connection {tuple}, {dirText}, {state}; {(before == now ? "state stays " + now : before + " → " + now)}");
        }
        _seen[ct] = now;
    }

    public static string Tuple(ConnTuple t)
    {
        string proto = ConntrackTable.ProtocolName(t.Protocol);
        string src = IpNet.FormatAddress(t.Source, t.Family), dst = IpNet.FormatAddress(t.Destination, t.Family);
        if (t.Family == IpFamily.V6)
        {
            src = "[" + src + "]";
            dst = "[" + dst + "]";
        }
        return ConnTuple.HasPortTuple(t.Protocol) && !t.IsIcmp
            ? $"{proto} {src}:{t.SourcePort} → {dst}:{t.DestinationPort}"
            : $"{proto} {src} → {dst}";
    }

    /// <summary>The JSON <c>ct</c> object: both tuples, status bits, TCP state, mark, seconds left.</summary>
    public static void WriteJson(Utf8JsonWriter w, object? connection, double now)
    {
        if (connection is not ConnEntry ct)
        {
            w.WriteNull("ct");
            return;
        }
        w.WriteStartObject("ct");
        WriteFields(w, ct, now);
        w.WriteEndObject();
    }

    /// <summary>The fields of the <c>ct</c> object, also those of each <c>conntrack -L</c> JSON object.</summary>
    public static void WriteFields(Utf8JsonWriter w, ConnEntry ct, double now)
    {
        WriteTuple(w, "original", ct.Original);
        WriteTuple(w, "reply", ct.Reply);
        w.WriteStartArray("status");
        foreach (ConnStatus s in Enum.GetValues<ConnStatus>())
        {
            if (s != ConnStatus.None && ct.Has(s)) w.WriteStringValue(StatusName(s));
        }
        w.WriteEndArray();
        // Always present (null when the connection is not TCP), so every object has the same fields (docs/json.md).
        if (ct.TcpState is { } t) w.WriteString("tcp_state", TcpTracker.Name(t));
        else w.WriteNull("tcp_state");
        // The NAT mapping, read from the tuples as the kernel keeps it: SNAT changes the reply's destination, DNAT its source.
        w.WriteStartObject("nat");
        if (ct.Has(ConnStatus.SrcNat))
            w.WriteString("snat", Endpoint(ct.Original, source: true) + " -> " + Endpoint(ct.Reply, source: false));
        if (ct.Has(ConnStatus.DstNat))
            w.WriteString("dnat", Endpoint(ct.Original, source: false) + " -> " + Endpoint(ct.Reply, source: true));
        w.WriteEndObject();
        w.WriteNumber("mark", ct.Mark);
        w.WriteNumber("timeout", ct.SecondsLeft(now));
        w.WriteString("line", ConntrackTable.Format(ct, now));
    }

    private static string Endpoint(ConnTuple t, bool source)
    {
        UInt128 a = source ? t.Source : t.Destination;
        string addr = IpNet.FormatAddress(a, t.Family);
        if (t.Family == IpFamily.V6) addr = "[" + addr + "]";
        if (!ConnTuple.HasPortTuple(t.Protocol) || t.IsIcmp) return addr;
        return addr + ":" + (source ? t.SourcePort : t.DestinationPort).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void WriteTuple(Utf8JsonWriter w, string name, ConnTuple t)
    {
        w.WriteStartObject(name);
        w.WriteString("proto", ConntrackTable.ProtocolName(t.Protocol));
        w.WriteString("src", IpNet.FormatAddress(t.Source, t.Family));
        w.WriteString("dst", IpNet.FormatAddress(t.Destination, t.Family));
        if (t.IsIcmp)
        {
            w.WriteNumber("type", t.IcmpType);
            w.WriteNumber("code", t.IcmpCode);
            w.WriteNumber("id", t.SourcePort);
        }
        else if (ConnTuple.HasPortTuple(t.Protocol))
        {
            w.WriteNumber("sport", t.SourcePort);
            w.WriteNumber("dport", t.DestinationPort);
        }
        w.WriteEndObject();
    }

    /// <summary>The IPS_* names as the kernel's ctnetlink and conntrack-tools spell them.</summary>
    public static string StatusName(ConnStatus s) => s switch
    {
        ConnStatus.Expected => "EXPECTED",
        ConnStatus.SeenReply => "SEEN_REPLY",
        ConnStatus.Assured => "ASSURED",
        ConnStatus.Confirmed => "CONFIRMED",
        ConnStatus.SrcNat => "SRC_NAT",
        ConnStatus.DstNat => "DST_NAT",
        ConnStatus.SeqAdjust => "SEQ_ADJUST",
        ConnStatus.SrcNatDone => "SRC_NAT_DONE",
        ConnStatus.DstNatDone => "DST_NAT_DONE",
        ConnStatus.Dying => "DYING",
        ConnStatus.FixedTimeout => "FIXED_TIMEOUT",
        ConnStatus.Template => "TEMPLATE",
        ConnStatus.Untracked => "UNTRACKED",
        ConnStatus.Helper => "HELPER",
        ConnStatus.Offload => "OFFLOAD",
        _ => s.ToString().ToUpperInvariant(),
    };
}
