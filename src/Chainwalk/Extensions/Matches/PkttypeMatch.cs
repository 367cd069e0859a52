using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m pkttype</c> (struct xt_pkttype_info): PACKET_HOST 0, BROADCAST 1, MULTICAST 2, OTHERHOST 3.</summary>
public sealed class PkttypeData : ExtensionData
{
    public byte PacketType;
    public bool Invert;
}

/// <summary><c>-m pkttype [!] --pkt-type unicast|broadcast|multicast|otherhost</c> (libxt_pkttype.c, xt_pkttype.c).</summary>
public sealed class PkttypeMatch : XtExtension<PkttypeData>
{
    public override string Name => "pkttype";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("pkt-type", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    private static readonly (string Name, byte Type)[] Types =
    [
        ("unicast", 0), ("broadcast", 1), ("multicast", 2), ("otherhost", 3), ("bcast", 1), ("mcast", 2), ("host", 0),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, PkttypeData d)
    {
        int i = Array.FindIndex(Types, t => string.Equals(t.Name, argument, StringComparison.OrdinalIgnoreCase));
        if (i < 0) throw ctx.Error($"Bad packet type '{argument}'");
        d.PacketType = Types[i].Type;
        if (invert) d.Invert = true;
    }

    private static string TypeName(byte t)
    {
        foreach (var (name, type) in Types)
        {
            if (type == t) return name;
        }
        return t.ToString(CultureInfo.InvariantCulture);
    }

    protected override void Save(StringBuilder sb, PkttypeData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --pkt-type ").Append(TypeName(d.PacketType));
    }

    protected override void Print(StringBuilder sb, PkttypeData d, IpFamily family, bool numeric)
    {
        sb.Append(" PKTTYPE ").Append(d.Invert ? "!" : string.Empty).Append("= ").Append(TypeName(d.PacketType));
    }

    /// <summary>
    /// xt_pkttype.c: skb->pkt_type; a looped-back packet (PACKET_LOOPBACK, what dev_loopback_xmit gives
    /// multicast and broadcast copies) counts as multicast for IPv6 and for an IPv4 multicast destination,
    /// else as broadcast. Locally generated packets carry PACKET_HOST (0) in OUTPUT and POSTROUTING.
    /// </summary>
    protected override bool Match(PacketContext ctx, PkttypeData d)
    {
        byte type = ctx.Skb.PacketType switch
        {
            Engine.PacketType.Outgoing => 0,
            Engine.PacketType.Loopback when ctx.Family == IpFamily.V6 => 2,
            Engine.PacketType.Loopback => (ctx.Packet.Destination >> 28) == 0xe ? (byte)2 : (byte)1,
            var t => (byte)t,
        };
        return (type == d.PacketType) ^ d.Invert;
    }
}
