using System.Buffers.Binary;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j SNPT</c> / <c>-j DNPT</c> (struct ip6t_npt_tginfo): the prefixes as given, not masked.</summary>
public sealed class NptData : ExtensionData
{
    public UInt128 SourcePrefix;
    public byte SourceLength;
    public UInt128 DestinationPrefix;
    public byte DestinationLength;
}

/// <summary>
/// IPv6-to-IPv6 network prefix translation, SNPT and DNPT (libip6t_SNPT.c, libip6t_DNPT.c, ip6t_NPT.c).
/// Both prefixes are mandatory; mangle table; the kernel refuses prefixes longer than 64.
/// </summary>
public abstract class NptTargetBase : XtExtension<NptData>
{
    // The extensions number their options 1 << 0 and 1 << 1.
    private const int SrcPfx = 1, DstPfx = 2;

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("src-pfx", SrcPfx, OptionArg.Required, OptFlags.Mandatory),
        new("dst-pfx", DstPfx, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, NptData d)
    {
        (UInt128 addr, uint len, _) = TargetParsing.HostMask(argument!, ctx.Family, ctx.Names, Name, option.Name);
        if (option.Id == SrcPfx)
        {
            d.SourcePrefix = addr;
            d.SourceLength = (byte)len;
        }
        else
        {
            d.DestinationPrefix = addr;
            d.DestinationLength = (byte)len;
        }
    }

    protected override void Save(StringBuilder sb, NptData d, IpFamily family)
    {
        if (d.SourcePrefix != UInt128.Zero || d.SourceLength != 0)
            sb.Append(" --src-pfx ").Append(IpNet.FormatAddress(d.SourcePrefix, family)).Append('/').Append(TargetParsing.Dec(d.SourceLength));
        if (d.DestinationPrefix != UInt128.Zero || d.DestinationLength != 0)
            sb.Append(" --dst-pfx ").Append(IpNet.FormatAddress(d.DestinationPrefix, family)).Append('/').Append(TargetParsing.Dec(d.DestinationLength));
    }

    protected override void Print(StringBuilder sb, NptData d, IpFamily family, bool numeric)
    {
        sb.Append(' ').Append(Name).Append(" src-pfx ").Append(IpNet.FormatAddress(d.SourcePrefix, family)).Append('/').Append(TargetParsing.Dec(d.SourceLength));
        sb.Append(" dst-pfx ").Append(IpNet.FormatAddress(d.DestinationPrefix, family)).Append('/').Append(TargetParsing.Dec(d.DestinationLength));
    }

    /// <summary>ip6t_npt_checkentry: prefixes of at most 64 bits, with no bits set past the prefix.</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, NptData d)
    {
        if (d.SourceLength > 64 || d.DestinationLength > 64) return RulesetEditor.InvalidArgument;
        bool clean = (d.SourcePrefix & ~IpNet.PrefixMask(IpFamily.V6, d.SourceLength)) == UInt128.Zero
            && (d.DestinationPrefix & ~IpNet.PrefixMask(IpFamily.V6, d.DestinationLength)) == UInt128.Zero;
        return clean ? null : RulesetEditor.InvalidArgument;
    }

    /// <summary>True for SNPT (the source address), false for DNPT.</summary>
    protected abstract bool Source { get; }

    /// <summary>
    /// ip6t_NPT.c: the address's prefix is replaced by the other prefix (the longer of the two lengths), and one
    /// 16-bit word of the rest (word 3 for prefixes up to /48, else the first of words 4-7 that is not 0xffff) is
    /// adjusted so the address's one's-complement sum, and so every checksum over it, is unchanged (RFC 6296).
    /// When no word can take the adjustment the packet is dropped with an ICMPv6 parameter problem pointing at the
    /// address.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, NptData data)
    {
        byte[] b = ctx.Packet.Bytes;
        int at = Source ? 8 : 24;
        UInt128 before = BinaryPrimitives.ReadUInt128BigEndian(b.AsSpan(at));
        if (!Map(data, b.AsSpan(at, 16)))
        {
            byte[]? err = IcmpErrors.Build(ctx.Host, ctx.Skb, 4, 0, (uint)at, ctx.State);
            if (err is not null) ctx.SendLocal(err);
            return Verdict.Drop;
        }
        UInt128 after = BinaryPrimitives.ReadUInt128BigEndian(b.AsSpan(at));
        if (after != before)
            ctx.Changed($"{(Source ? "source" : "destination")} {IpNet.FormatAddress(before, IpFamily.V6)}→{IpNet.FormatAddress(after, IpFamily.V6)}");
        return Verdict.Continue;
    }

    private static uint Fold(uint sum)
    {
        while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
        return sum;
    }

    private static uint Sum16(UInt128 a)
    {
        uint s = 0;
        for (int shift = 0; shift < 128; shift += 16) s += (uint)(ushort)(a >> shift);
        return Fold(s);
    }

    private static bool Map(NptData d, Span<byte> addr)
    {
        // The checksum-neutral adjustment: sum(source prefix) - sum(destination prefix), in one's complement.
        uint adjustment = Fold(Sum16(d.SourcePrefix) + (~Sum16(d.DestinationPrefix) & 0xffff));
        int pfxLen = Math.Max(d.SourceLength, d.DestinationLength);
        UInt128 a = BinaryPrimitives.ReadUInt128BigEndian(addr);
        UInt128 hostMask = pfxLen == 0 ? UInt128.MaxValue : (UInt128.One << (128 - pfxLen)) - 1;
        a = (a & hostMask) | (d.DestinationPrefix & ~hostMask);
        BinaryPrimitives.WriteUInt128BigEndian(addr, a);
        int idx;
        if (pfxLen <= 48)
        {
            idx = 3;
        }
        else
        {
            for (idx = 4; idx < 8; idx++)
            {
                if (BinaryPrimitives.ReadUInt16BigEndian(addr[(idx * 2)..]) != 0xffff) break;
            }
            if (idx == 8) return false;
        }
        uint word = BinaryPrimitives.ReadUInt16BigEndian(addr[(idx * 2)..]);
        uint sum = Fold(word + adjustment);
        if (sum == 0xffff) sum = 0;
        BinaryPrimitives.WriteUInt16BigEndian(addr[(idx * 2)..], (ushort)sum);
        return true;
    }
}
