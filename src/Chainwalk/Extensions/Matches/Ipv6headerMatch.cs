using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m ipv6header</c> (struct ip6t_ipv6header_info).</summary>
public sealed class Ipv6headerData : ExtensionData
{
    /// <summary>MASK_* bits: 0x80 hop-by-hop, 0x40 dst, 0x20 routing, 0x10 fragment, 0x08 ah, 0x04 esp, 0x02 none, 0x01 protocol.</summary>
    public byte MatchFlags;

    /// <summary>0xFF when inverted.</summary>
    public byte InvFlags;

    /// <summary>0xFF with <c>--soft</c> (any of the headers instead of exactly these).</summary>
    public byte ModeFlag;
}

/// <summary><c>-m ipv6header --header LIST [--soft]</c> (libip6t_ipv6header.c, ip6t_ipv6header.c).</summary>
public sealed class Ipv6headerMatch : XtExtension<Ipv6headerData>
{
    private const int Header = 0, Soft = 1;

    public override string Name => "ipv6header";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("header", Header, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
        new("soft", Soft, OptionArg.None),
    ];

    private static readonly (string Name, byte Proto)[] ChainProtos =
    [
        ("hop-by-hop", 0), ("protocol", 255), ("hop", 0), ("dst", 60), ("route", 43), ("frag", 44), ("auth", 51),
        ("esp", 50), ("none", 59), ("prot", 255), ("0", 0), ("60", 60), ("43", 43), ("44", 44), ("51", 51),
        ("50", 50), ("59", 59), ("255", 255),
    ];

    private static readonly (byte Proto, byte Flag)[] ChainFlags =
        [(0, 0x80), (60, 0x40), (43, 0x20), (44, 0x10), (51, 0x08), (50, 0x04), (59, 0x02), (255, 0x01)];

    private static int NameToProto(string s, NameDb names)
    {
        if (names.TryGetProtocolNumber(s, out int p)) return p;
        foreach (var (name, proto) in ChainProtos)
        {
            if (name == s) return proto;
        }
        throw XtablesException.Param($"unknown header `{s}' specified");
    }

    private static byte ProtoToMask(int proto)
    {
        foreach (var (p, flag) in ChainFlags)
        {
            if (p == proto) return flag;
        }
        throw XtablesException.Param($"unknown header `{proto.ToString(CultureInfo.InvariantCulture)}' specified");
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, Ipv6headerData d)
    {
        if (option.Id == Soft)
        {
            d.ModeFlag = 0xFF;
            return;
        }
        byte mask = 0;
        foreach (string part in argument!.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            mask |= ProtoToMask(NameToProto(part, ctx.Names));
        }
        d.MatchFlags = mask;
        if (mask == 0) throw ctx.Error("ip6t_ipv6header: cannot parse header names");
        if (invert) d.InvFlags = 0xFF;
    }

    private static string ProtoName(byte proto)
    {
        if (proto != 0 && NameDb.Printing.ProtocolName(proto) is { } n) return n;
        foreach (var (name, p) in ChainProtos)
        {
            if (p == proto) return name;
        }
        return "(null)";
    }

    private static void AppendHeaders(StringBuilder sb, byte flags)
    {
        bool have = false;
        while (flags != 0)
        {
            int i = 0;
            while ((flags & ChainFlags[i].Flag) == 0) i++;
            if (have) sb.Append(',');
            sb.Append(ProtoName(ChainFlags[i].Proto));
            have = true;
            flags &= (byte)~ChainFlags[i].Flag;
        }
        if (!have) sb.Append("NONE");
    }

    protected override void Save(StringBuilder sb, Ipv6headerData d, IpFamily family)
    {
        sb.Append(d.InvFlags != 0 ? " !" : string.Empty).Append(" --header ");
        AppendHeaders(sb, d.MatchFlags);
        if (d.ModeFlag != 0) sb.Append(" --soft");
    }

    protected override void Print(StringBuilder sb, Ipv6headerData d, IpFamily family, bool numeric)
    {
        sb.Append(" ipv6header");
        if (d.MatchFlags != 0 || d.InvFlags != 0)
        {
            sb.Append(" flags:").Append(d.InvFlags != 0 ? "!" : string.Empty);
            if (numeric) sb.Append("0x").Append(d.MatchFlags.ToString("X2", CultureInfo.InvariantCulture));
            else AppendHeaders(sb, d.MatchFlags);
        }
        if (d.ModeFlag != 0) sb.Append(" soft");
    }

    /// <summary>
    /// Evaluates the match (ip6t_ipv6header.c): collects which extension headers the packet has (hop-by-hop,
    /// destination, routing, fragment, AH; ESP and "none" end the chain; anything else is "protocol"), then
    /// compares with the wanted set: exactly these, or with --soft at least these. As in the kernel, --soft with
    /// "!" matches every packet that gets that far (it XORs a truth value with 0xFF).
    /// </summary>
    protected override bool Match(PacketContext ctx, Ipv6headerData d)
    {
        ReadOnlySpan<byte> b = ctx.Packet.Bytes;
        byte next = b[6];
        int len = b.Length - 40, ptr = 40;
        byte seen = 0;
        while (next is IpProtocol.HopByHop or IpProtocol.Routing or IpProtocol.Fragment or IpProtocol.Esp or IpProtocol.Ah
            or IpProtocol.NoNextHeader or IpProtocol.DestinationOptions)
        {
            if (next == IpProtocol.NoNextHeader) { seen |= 0x02; break; }
            if (len < 2) return false;
            if (next == IpProtocol.Esp) { seen |= 0x04; break; }
            if (ptr + 2 > b.Length) return false;
            int hdrlen = next switch
            {
                IpProtocol.Fragment => 8,
                IpProtocol.Ah => (b[ptr + 1] + 2) << 2,
                _ => (b[ptr + 1] + 1) << 3,
            };
            seen |= next switch
            {
                IpProtocol.HopByHop => (byte)0x80,
                IpProtocol.Routing => (byte)0x20,
                IpProtocol.Fragment => (byte)0x10,
                IpProtocol.Ah => (byte)0x08,
                _ => (byte)0x40,
            };
            next = b[ptr];
            len -= hdrlen;
            ptr += hdrlen;
            if (ptr > b.Length) break;
        }
        if (next != IpProtocol.NoNextHeader && next != IpProtocol.Esp) seen |= 0x01;
        if (d.ModeFlag != 0) return d.InvFlags != 0 || (seen & d.MatchFlags) == d.MatchFlags;
        return d.InvFlags != 0 ? seen != d.MatchFlags : seen == d.MatchFlags;
    }
}
