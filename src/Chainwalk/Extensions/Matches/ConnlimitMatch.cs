using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m connlimit</c> revision 1 (struct xt_connlimit_info).</summary>
public sealed class ConnlimitData : ExtensionData
{
    public uint Limit;

    /// <summary>The grouping prefix length; -1 until given (then the family's full length).</summary>
    public int PrefixLength = -1;

    /// <summary>XT_CONNLIMIT_INVERT: match when the count is at most <see cref="Limit"/> (--connlimit-upto).</summary>
    public bool Upto;

    /// <summary>XT_CONNLIMIT_DADDR: group by destination address.</summary>
    public bool ByDestination;

    public int EffectivePrefix(IpFamily family) => PrefixLength < 0 ? family.AddressBits() : PrefixLength;
}

/// <summary>
/// <c>-m connlimit --connlimit-upto|--connlimit-above N [--connlimit-mask LEN] [--connlimit-saddr|--connlimit-daddr]</c>
/// (libxt_connlimit.c revision 1, xt_connlimit.c). The save form always shows the mask and the address side.
/// </summary>
public sealed class ConnlimitMatch : XtExtension<ConnlimitData>
{
    private const int OUpto = 0, OAbove = 1, OMask = 2, OSaddr = 3, ODaddr = 4;

    public override string Name => "connlimit";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, ConnlimitData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("connlimit-upto", OUpto, OptionArg.Required, OptFlags.Invert) { Excludes = 1UL << OAbove },
        new("connlimit-above", OAbove, OptionArg.Required, OptFlags.Invert) { Excludes = 1UL << OUpto },
        new("connlimit-mask", OMask),
        new("connlimit-saddr", OSaddr, OptionArg.None) { Excludes = 1UL << ODaddr },
        new("connlimit-daddr", ODaddr, OptionArg.None) { Excludes = 1UL << OSaddr },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConnlimitData d)
    {
        switch (option.Id)
        {
            case OUpto:
                d.Limit = (uint)XtParse.UIntStrict(argument!, 0, uint.MaxValue, Name, option.Name);
                if (!invert) d.Upto = true;
                break;
            case OAbove:
                d.Limit = (uint)XtParse.UIntStrict(argument!, 0, uint.MaxValue, Name, option.Name);
                if (invert) d.Upto = true;
                break;
            case OMask:
                d.PrefixLength = XtParse.PrefixLength(argument!, ctx.Family, Name, option.Name);
                break;
            case OSaddr:
                d.ByDestination = false;
                break;
            case ODaddr:
                d.ByDestination = true;
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, ConnlimitData d)
    {
        if ((d.Given & ((1UL << OUpto) | (1UL << OAbove))) == 0)
            throw ctx.Error("You must specify \"--connlimit-above\" or \"--connlimit-upto\".");
    }

    /// <summary>
    /// connlimit_mt with nf_conncount: per rule, the connections seen per masked source (or destination)
    /// address; a connection leaves the count when it is gone from the table or a TCP one is in TIME_WAIT or
    /// CLOSE. The packet's own connection is added when not yet counted (an unconfirmed one stays counted only
    /// while its packet is in flight, as the kernel keeps it a jiffy). No tuple: hotdrop.
    /// </summary>
    protected override bool Match(PacketContext ctx, ConnlimitData d)
    {
        Skb skb = ctx.Skb;
        ConnEntry? own = ConntrackHooks.TryGet(skb, out ConnEntry e, out _) ? e : null;
        ConnTuple tuple;
        if (own is not null) tuple = own.Original;
        else if (!ConnTuple.TryFromPacket(skb.Packet, out tuple))
        {
            ctx.HotDrop = true;
            return false;
        }
        UInt128 addr = d.ByDestination ? skb.Packet.Destination : skb.Packet.Source;
        UInt128 key = addr & Net.IpNet.PrefixMask(skb.Family, d.EffectivePrefix(skb.Family));
        var lists = ctx.RuleState(() => new ConnlimitState()).Lists;
        if (!lists.TryGetValue(key, out var list)) lists[key] = list = new();
        ConntrackTable? table = (ctx.Netfilter.Conntrack as ConntrackHooks)?.Table;
        bool counted = false;
        for (int i = list.Count - 1; i >= 0; i--)
        {
            var (t, ent) = list[i];
            ConnEntry? live = null;
            if (table is not null && table.TryFind(t, 0, ctx.Now, out ConnEntry found, out _)) live = found;
            // The entry kept is still that connection only while it holds the tuple (the conntrack table reuses removed
            // entries for new connections, as the kernel's slab does: nf_conncount compares tuples, not pointers).
            else if (ent is not null && ent == own && !ent.IsConfirmed && ent.TupleIs(ConnDirection.Original, t)) live = ent;
            if (live is null || live.TcpState is TcpCtState.TimeWait or TcpCtState.Close)
            {
                list.RemoveAt(i);
                continue;
            }
            if (t == tuple) counted = true;
        }
        if (!counted) list.Add((tuple, own));
        int connections = list.Count;
        return (connections > d.Limit) != d.Upto;
    }

    protected override void Save(StringBuilder sb, ConnlimitData d, IpFamily family)
    {
        sb.Append(d.Upto ? " --connlimit-upto " : " --connlimit-above ").Append(XtParse.Dec(d.Limit));
        sb.Append(" --connlimit-mask ").Append(XtParse.Dec((ulong)d.EffectivePrefix(family)));
        sb.Append(d.ByDestination ? " --connlimit-daddr" : " --connlimit-saddr");
    }

    protected override void Print(StringBuilder sb, ConnlimitData d, IpFamily family, bool numeric)
    {
        sb.Append(" #conn ").Append(d.ByDestination ? "dst" : "src").Append('/').Append(XtParse.Dec((ulong)d.EffectivePrefix(family)))
          .Append(d.Upto ? " <= " : " > ").Append(XtParse.Dec(d.Limit));
    }
}

/// <summary>A connlimit rule's lists (nf_conncount's tree): per masked address, the tuples counted; kept between commands.</summary>
public sealed class ConnlimitState : IRuntimeState
{
    public Dictionary<UInt128, List<(ConnTuple Tuple, ConnEntry? Entry)>> Lists { get; } = new();

    public System.Text.Json.Nodes.JsonNode? Save()
    {
        if (Lists.Count == 0) return null;
        var o = new System.Text.Json.Nodes.JsonObject();
        foreach (var kv in Lists)
        {
            if (kv.Value.Count == 0) continue;
            var a = new System.Text.Json.Nodes.JsonArray();
            foreach (var (t, _) in kv.Value)
            {
                a.Add(string.Join(' ', t.Family == IpFamily.V4 ? "4" : "6", XtParse.Dec(t.Protocol), IpNet.FormatAddress(t.Source, t.Family),
                    IpNet.FormatAddress(t.Destination, t.Family), XtParse.Dec(t.SourcePort), XtParse.Dec(t.DestinationPort)));
            }
            o[kv.Key.ToString(System.Globalization.CultureInfo.InvariantCulture)] = a;
        }
        return o;
    }

    public void Load(System.Text.Json.Nodes.JsonNode node)
    {
        Lists.Clear();
        if (node is not System.Text.Json.Nodes.JsonObject o) return;
        foreach (var kv in o)
        {
            if (kv.Value is not System.Text.Json.Nodes.JsonArray a
                || !UInt128.TryParse(kv.Key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out UInt128 key)) continue;
            var list = new List<(ConnTuple, ConnEntry?)>();
            foreach (var item in a)
            {
                string[] w = (item?.GetValue<string>() ?? "").Split(' ');
                if (w.Length != 6) continue;
                IpFamily f = w[0] == "4" ? IpFamily.V4 : IpFamily.V6;
                if (!IpNet.TryParseNumeric(w[2], f, out UInt128 src) || !IpNet.TryParseNumeric(w[3], f, out UInt128 dst)) continue;
                list.Add((new ConnTuple(f, byte.Parse(w[1], System.Globalization.CultureInfo.InvariantCulture), src, dst,
                    ushort.Parse(w[4], System.Globalization.CultureInfo.InvariantCulture), ushort.Parse(w[5], System.Globalization.CultureInfo.InvariantCulture)), null));
            }
            Lists[key] = list;
        }
    }
}
