using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m icmp6</c> (struct ip6t_icmp).</summary>
public sealed class Icmp6Data : ExtensionData
{
    public byte Type;
    public byte CodeMin;
    public byte CodeMax = 0xFF;
    public bool Invert;
}

/// <summary>
/// <c>-m icmp6 --icmpv6-type</c> (libip6t_icmp6.c, icmp6_match in ip6_tables.c): IPv6 only, needs
/// <c>-p icmpv6</c>; <c>-m icmpv6</c>/<c>-m ipv6-icmp</c> and <c>-p icmpv6</c> load it too.
/// </summary>
public sealed class Icmp6Match : XtExtension<Icmp6Data>
{
    public override string Name => "icmp6";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override ushort RequiredProtocol => Protocols.Icmpv6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("icmpv6-type", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    /// <summary>icmpv6_codes of libxt_icmp.h (1.8.9: no MLD names yet).</summary>
    public static readonly XtParse.IcmpName[] Codes =
    [
        new("destination-unreachable", 1, 0, 0xFF),
        new("no-route", 1, 0, 0),
        new("communication-prohibited", 1, 1, 1),
        new("beyond-scope", 1, 2, 2),
        new("address-unreachable", 1, 3, 3),
        new("port-unreachable", 1, 4, 4),
        new("failed-policy", 1, 5, 5),
        new("reject-route", 1, 6, 6),
        new("packet-too-big", 2, 0, 0xFF),
        new("time-exceeded", 3, 0, 0xFF),
        new("ttl-exceeded", 3, 0, 0xFF),
        new("ttl-zero-during-transit", 3, 0, 0),
        new("ttl-zero-during-reassembly", 3, 1, 1),
        new("parameter-problem", 4, 0, 0xFF),
        new("bad-header", 4, 0, 0),
        new("unknown-header-type", 4, 1, 1),
        new("unknown-option", 4, 2, 2),
        new("echo-request", 128, 0, 0xFF),
        new("ping", 128, 0, 0xFF),
        new("echo-reply", 129, 0, 0xFF),
        new("pong", 129, 0, 0xFF),
        new("router-solicitation", 133, 0, 0xFF),
        new("router-advertisement", 134, 0, 0xFF),
        new("neighbour-solicitation", 135, 0, 0xFF),
        new("neighbor-solicitation", 135, 0, 0xFF),
        new("neighbour-advertisement", 136, 0, 0xFF),
        new("neighbor-advertisement", 136, 0, 0xFF),
        new("redirect", 137, 0, 0xFF),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, Icmp6Data d)
    {
        (d.Type, d.CodeMin, d.CodeMax) = XtParse.IcmpType(argument!, Codes, "ICMPv6");
        d.Invert |= invert;
    }

    protected override void Save(StringBuilder sb, Icmp6Data d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --icmpv6-type ").Append(XtParse.Dec(d.Type));
        if (d.CodeMin != 0 || d.CodeMax != 0xFF) sb.Append('/').Append(XtParse.Dec(d.CodeMin));
    }

    protected override void Print(StringBuilder sb, Icmp6Data d, IpFamily family, bool numeric)
    {
        sb.Append(" ipv6-icmp");
        XtParse.AppendIcmpType(sb, Codes, d.Type, d.CodeMin, d.CodeMax, d.Invert, numeric);
    }

    /// <summary>
    /// Evaluates the match (icmp6_match, now in xt_tcpudp.c): no "any" type here; non-first fragments never
    /// match; fewer than 8 bytes of ICMPv6 header drop the packet.
    /// </summary>
    protected override bool Match(PacketContext ctx, Icmp6Data d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, 8, out ReadOnlySpan<byte> ic)) return HeaderReads.Drop(ctx);
        bool hit = ic[0] == d.Type && ic[1] >= d.CodeMin && ic[1] <= d.CodeMax;
        return hit != d.Invert;
    }
}
