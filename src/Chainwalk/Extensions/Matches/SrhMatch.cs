using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m srh</c> revision 1 (struct ip6t_srh1). Flag bit i = option id i (IP6T_SRH_*).</summary>
public sealed class SrhData : ExtensionData
{
    public ushort Flags;
    public ushort InvFlags;

    public byte NextHeader;
    public byte HeaderLength;
    public byte SegmentsLeft;
    public byte LastEntry;
    public ushort Tag;

    public UInt128 PsidAddress;
    public UInt128 PsidMask;
    public UInt128 NsidAddress;
    public UInt128 NsidMask;
    public UInt128 LsidAddress;
    public UInt128 LsidMask;
}

/// <summary><c>-m srh</c> (libip6t_srh.c revision 1, ip6t_srh.c): the IPv6 segment routing header.</summary>
public sealed class SrhMatch : XtExtension<SrhData>
{
    private const int NextHdr = 0, LenEq = 1, LenGt = 2, LenLt = 3, SegsEq = 4, SegsGt = 5, SegsLt = 6,
        LastEq = 7, LastGt = 8, LastLt = 9, Tag = 10, Psid = 11, Nsid = 12, Lsid = 13;

    public override string Name => "srh";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    private static readonly string[] OptionNames =
    [
        "srh-next-hdr", "srh-hdr-len-eq", "srh-hdr-len-gt", "srh-hdr-len-lt", "srh-segs-left-eq", "srh-segs-left-gt",
        "srh-segs-left-lt", "srh-last-entry-eq", "srh-last-entry-gt", "srh-last-entry-lt", "srh-tag", "srh-psid",
        "srh-nsid", "srh-lsid",
    ];

    /// <summary>The -L labels, by option id (the save form is "--" + the option name).</summary>
    private static readonly string[] Labels =
    [
        "next-hdr", "hdr-len-eq", "hdr-len-gt", "hdr-len-lt", "segs-left-eq", "segs-left-gt", "segs-left-lt",
        "last-entry-eq", "last-entry-gt", "last-entry-lt", "tag", "psid", "nsid", "lsid",
    ];

    public override IReadOnlyList<XtOption> Options { get; } =
        OptionNames.Select((n, i) => new XtOption(n, i, OptionArg.Required, OptFlags.Invert)).ToArray();

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, SrhData d)
    {
        string arg = argument!;
        string opt = OptionNames[option.Id];
        switch (option.Id)
        {
            case NextHdr:
                d.NextHeader = (byte)XtParse.UIntOption(arg, 0, 255, Name, opt);
                break;
            case LenEq or LenGt or LenLt:
                d.HeaderLength = (byte)XtParse.UIntOption(arg, 0, 255, Name, opt);
                break;
            case SegsEq or SegsGt or SegsLt:
                d.SegmentsLeft = (byte)XtParse.UIntOption(arg, 0, 255, Name, opt);
                break;
            case LastEq or LastGt or LastLt:
                d.LastEntry = (byte)XtParse.UIntOption(arg, 0, 255, Name, opt);
                break;
            case Tag:
                d.Tag = (ushort)XtParse.UIntOption(arg, 0, ushort.MaxValue, Name, opt);
                break;
            case Psid:
                (d.PsidAddress, d.PsidMask) = HostMask(arg, opt, ctx.Names);
                break;
            case Nsid:
                (d.NsidAddress, d.NsidMask) = HostMask(arg, opt, ctx.Names);
                break;
            default:
                (d.LsidAddress, d.LsidMask) = HostMask(arg, opt, ctx.Names);
                break;
        }
        d.Flags |= (ushort)(1 << option.Id);
        if (invert) d.InvFlags |= (ushort)(1 << option.Id);
    }

    /// <summary>XTTYPE_HOSTMASK for IPv6: "host[/prefixlen or /mask]", the mask all ones without a slash.</summary>
    private UInt128 HostAddress(string host, NameDb names)
    {
        if (IpNet.TryParseV6Numeric(host, out UInt128 a)) return a;
        IReadOnlyList<UInt128> found = names.HostAddresses(host, IpFamily.V6);
        if (found.Count == 0) throw XtablesException.Param("getaddrinfo: Name or service not known\n");
        if (found.Any(x => x != found[0])) throw XtablesException.Param($"{host} resolves to more than one address\n");
        return found[0];
    }

    private (UInt128, UInt128) HostMask(string text, string option, NameDb names)
    {
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0) return (HostAddress(text, names), UInt128.MaxValue);
        UInt128 addr = HostAddress(text[..slash], names);
        string plen = text[(slash + 1)..];
        if (XtParse.TryUInt(plen, 0, 128, out ulong bits)) return (addr, IpNet.PrefixMask(IpFamily.V6, (int)bits));
        if (IpNet.TryParseV6Numeric(plen, out UInt128 mask)) return (addr, mask);
        throw XtablesException.Param($"{Name}: bad value for option \"--{option}\", neither a valid network mask nor valid CIDR (0-128).\n");
    }

    private static string Cidr(UInt128 mask)
    {
        int c = IpNet.MaskToCidr(mask, IpFamily.V6);
        return c < 0 ? uint.MaxValue.ToString(CultureInfo.InvariantCulture) : c.ToString(CultureInfo.InvariantCulture);
    }

    private static (UInt128 Addr, UInt128 Mask) Sid(SrhData d, int id) => id switch
    {
        Psid => (d.PsidAddress, d.PsidMask),
        Nsid => (d.NsidAddress, d.NsidMask),
        _ => (d.LsidAddress, d.LsidMask),
    };

    private static uint Value(SrhData d, int id) => id switch
    {
        NextHdr => d.NextHeader,
        LenEq or LenGt or LenLt => d.HeaderLength,
        SegsEq or SegsGt or SegsLt => d.SegmentsLeft,
        LastEq or LastGt or LastLt => d.LastEntry,
        _ => d.Tag,
    };

    protected override void Save(StringBuilder sb, SrhData d, IpFamily family)
    {
        for (int id = 0; id <= Lsid; id++)
        {
            if ((d.Flags & (1 << id)) == 0) continue;
            if ((d.InvFlags & (1 << id)) != 0) sb.Append(" !");
            sb.Append(" --").Append(OptionNames[id]).Append(' ');
            if (id >= Psid)
            {
                var (a, m) = Sid(d, id);
                sb.Append(IpNet.FormatAddress(a, IpFamily.V6)).Append('/').Append(Cidr(m));
            }
            else
            {
                sb.Append(XtParse.Dec(Value(d, id)));
            }
        }
    }

    protected override void Print(StringBuilder sb, SrhData d, IpFamily family, bool numeric)
    {
        sb.Append(" srh");
        for (int id = 0; id <= Lsid; id++)
        {
            if ((d.Flags & (1 << id)) == 0) continue;
            string inv = (d.InvFlags & (1 << id)) != 0 ? "!" : string.Empty;
            if (id >= Psid)
            {
                var (a, m) = Sid(d, id);
                sb.Append(' ').Append(Labels[id]).Append(' ').Append(inv).Append(' ')
                  .Append(IpNet.FormatAddress(a, IpFamily.V6)).Append('/').Append(Cidr(m));
            }
            else
            {
                sb.Append(' ').Append(Labels[id]).Append(':').Append(inv).Append(XtParse.Dec(Value(d, id)));
            }
        }
    }

    /// <summary>
    /// Evaluates the match (ip6t_srh.c, srh1_mt6): the routing header must be a segment routing header (type 4)
    /// with segments left not above last entry; then each given field compare, inverted where asked. Headers or
    /// segments that cannot be read make it fail, never drop. PSID is the previous segment (none when segments
    /// left equals last entry), NSID the next (none when segments left is 0), LSID the last.
    /// </summary>
    protected override bool Match(PacketContext ctx, SrhData d)
    {
        Packet p = ctx.Packet;
        if (Ipv6HeaderFinder.Find(p.Bytes, IpProtocol.Routing, out int off, out _) < 0) return false;
        if (!HeaderReads.TryRead(p, off, 8, out ReadOnlySpan<byte> srh)) return false;
        byte nexthdr = srh[0], hdrlen = srh[1], type = srh[2], segsLeft = srh[3], last = srh[4];
        // ip6t_srh.c compares the header's big-endian tag with the host-order number libip6t_srh stored: on a
        // little-endian host (x86, arm64) --srh-tag 0x7707 is what matches a tag of 0x0777 (recorded on Linux 6.18).
        ushort tag = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(srh[6..]);
        if (type != 4 || segsLeft > last) return false;
        if (Fails(d, 0, nexthdr == d.NextHeader)) return false;
        if (Fails(d, 1, hdrlen == d.HeaderLength) || Fails(d, 2, hdrlen > d.HeaderLength) || Fails(d, 3, hdrlen < d.HeaderLength)) return false;
        if (Fails(d, 4, segsLeft == d.SegmentsLeft) || Fails(d, 5, segsLeft > d.SegmentsLeft) || Fails(d, 6, segsLeft < d.SegmentsLeft)) return false;
        if (Fails(d, 7, last == d.LastEntry) || Fails(d, 8, last > d.LastEntry) || Fails(d, 9, last < d.LastEntry)) return false;
        if (Fails(d, 10, tag == d.Tag)) return false;
        if (Given(d, 11))
        {
            if (segsLeft == last) return false;
            if (!Sid(p, off + 8 + (segsLeft + 1) * 16, out UInt128 psid)) return false;
            if (Fails(d, 11, (psid & d.PsidMask) == (d.PsidAddress & d.PsidMask))) return false;
        }
        if (Given(d, 12))
        {
            if (segsLeft == 0) return false;
            if (!Sid(p, off + 8 + (segsLeft - 1) * 16, out UInt128 nsid)) return false;
            if (Fails(d, 12, (nsid & d.NsidMask) == (d.NsidAddress & d.NsidMask))) return false;
        }
        if (Given(d, 13))
        {
            if (!Sid(p, off + 8 + last * 16, out UInt128 lsid)) return false;
            if (Fails(d, 13, (lsid & d.LsidMask) == (d.LsidAddress & d.LsidMask))) return false;
        }
        return true;
    }

    private static bool Given(SrhData d, int id) => (d.Flags & (1 << id)) != 0;

    /// <summary>A given compare that fails: its condition, inverted when asked, is false.</summary>
    private static bool Fails(SrhData d, int id, bool condition) =>
        Given(d, id) && condition == ((d.InvFlags & (1 << id)) != 0);

    private static bool Sid(Packet p, int at, out UInt128 sid)
    {
        sid = 0;
        if (!HeaderReads.TryRead(p, at, 16, out ReadOnlySpan<byte> b)) return false;
        sid = System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(b);
        return true;
    }
}
