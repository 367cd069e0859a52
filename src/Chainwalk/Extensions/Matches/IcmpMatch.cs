using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m icmp</c> (struct ipt_icmp): type 0xFF means any.</summary>
public sealed class IcmpData : ExtensionData
{
    public byte Type = 0xFF;
    public byte CodeMin;
    public byte CodeMax = 0xFF;
    public bool Invert;
}

/// <summary><c>-m icmp --icmp-type</c> (libipt_icmp.c, ipt_icmp in ip_tables.c): IPv4 only, needs <c>-p icmp</c>.</summary>
public sealed class IcmpMatch : XtExtension<IcmpData>
{
    public override string Name => "icmp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V4;

    public override ushort RequiredProtocol => Protocols.Icmp;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("icmp-type", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    /// <summary>icmp_codes of libxt_icmp.h, in its order (aliases included).</summary>
    public static readonly XtParse.IcmpName[] Codes =
    [
        new("any", 0xFF, 0, 0xFF),
        new("echo-reply", 0, 0, 0xFF),
        new("pong", 0, 0, 0xFF),
        new("destination-unreachable", 3, 0, 0xFF),
        new("network-unreachable", 3, 0, 0),
        new("host-unreachable", 3, 1, 1),
        new("protocol-unreachable", 3, 2, 2),
        new("port-unreachable", 3, 3, 3),
        new("fragmentation-needed", 3, 4, 4),
        new("source-route-failed", 3, 5, 5),
        new("network-unknown", 3, 6, 6),
        new("host-unknown", 3, 7, 7),
        new("network-prohibited", 3, 9, 9),
        new("host-prohibited", 3, 10, 10),
        new("TOS-network-unreachable", 3, 11, 11),
        new("TOS-host-unreachable", 3, 12, 12),
        new("communication-prohibited", 3, 13, 13),
        new("host-precedence-violation", 3, 14, 14),
        new("precedence-cutoff", 3, 15, 15),
        new("source-quench", 4, 0, 0xFF),
        new("redirect", 5, 0, 0xFF),
        new("network-redirect", 5, 0, 0),
        new("host-redirect", 5, 1, 1),
        new("TOS-network-redirect", 5, 2, 2),
        new("TOS-host-redirect", 5, 3, 3),
        new("echo-request", 8, 0, 0xFF),
        new("ping", 8, 0, 0xFF),
        new("router-advertisement", 9, 0, 0xFF),
        new("router-solicitation", 10, 0, 0xFF),
        new("time-exceeded", 11, 0, 0xFF),
        new("ttl-exceeded", 11, 0, 0xFF),
        new("ttl-zero-during-transit", 11, 0, 0),
        new("ttl-zero-during-reassembly", 11, 1, 1),
        new("parameter-problem", 12, 0, 0xFF),
        new("ip-header-bad", 12, 0, 0),
        new("required-option-missing", 12, 1, 1),
        new("timestamp-request", 13, 0, 0xFF),
        new("timestamp-reply", 14, 0, 0xFF),
        new("address-mask-request", 17, 0, 0xFF),
        new("address-mask-reply", 18, 0, 0xFF),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, IcmpData d)
    {
        (d.Type, d.CodeMin, d.CodeMax) = XtParse.IcmpType(argument!, Codes, "ICMP");
        d.Invert |= invert;
    }

    protected override void Save(StringBuilder sb, IcmpData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        if (d.Type == 0xFF)
        {
            sb.Append(" --icmp-type any");
            return;
        }
        sb.Append(" --icmp-type ").Append(XtParse.Dec(d.Type));
        if (d.CodeMin != 0 || d.CodeMax != 0xFF) sb.Append('/').Append(XtParse.Dec(d.CodeMin));
    }

    protected override void Print(StringBuilder sb, IcmpData d, IpFamily family, bool numeric)
    {
        sb.Append(" icmp");
        XtParse.AppendIcmpType(sb, Codes, d.Type, d.CodeMin, d.CodeMax, d.Invert, numeric);
    }

    /// <summary>
    /// Evaluates the match (icmp_match, now in xt_tcpudp.c): type 255 ("any") matches every type and code;
    /// non-first fragments never match; fewer than 8 bytes of ICMP header drop the packet.
    /// </summary>
    protected override bool Match(PacketContext ctx, IcmpData d)
    {
        Packet p = ctx.Packet;
        if (HeaderReads.FragOff(p) != 0) return false;
        if (!HeaderReads.TryTransport(p, IcmpHeader.Length, out ReadOnlySpan<byte> ic)) return HeaderReads.Drop(ctx);
        bool hit = d.Type == 0xFF || (ic[0] == d.Type && ic[1] >= d.CodeMin && ic[1] <= d.CodeMax);
        return hit != d.Invert;
    }
}
