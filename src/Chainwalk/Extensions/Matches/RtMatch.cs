using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m rt</c> (struct ip6t_rt).</summary>
public sealed class RtData : ExtensionData
{
    public const int MaxAddresses = 16;

    public bool HasType;
    public uint RtType;
    public bool InvType;

    public bool HasSegsLeft;
    public uint SegsLeftMin;
    public uint SegsLeftMax = uint.MaxValue;
    public bool InvSegsLeft;

    public bool HasLength;
    public uint HeaderLength;
    public bool InvLength;

    /// <summary><c>--rt-0-res</c>.</summary>
    public bool Reserved;

    /// <summary><c>--rt-0-addrs</c> given.</summary>
    public bool HasAddresses;

    public UInt128[] Addresses = new UInt128[MaxAddresses];

    public int AddressCount;

    /// <summary><c>--rt-0-not-strict</c>.</summary>
    public bool NotStrict;

    public override ExtensionData Clone()
    {
        var c = (RtData)MemberwiseClone();
        c.Addresses = (UInt128[])Addresses.Clone();
        return c;
    }
}

/// <summary><c>-m rt</c> (libip6t_rt.c, ip6t_rt.c): the IPv6 routing header; type 0 address lists.</summary>
public sealed class RtMatch : XtExtension<RtData>
{
    private const int Type = 0, Segs = 1, Len = 2, Res = 3, Addrs = 4, NotStrict = 5;

    public override string Name => "rt";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("rt-type", Type, OptionArg.Required, OptFlags.Invert),
        new("rt-segsleft", Segs, OptionArg.Required, OptFlags.Invert),
        new("rt-len", Len, OptionArg.Required, OptFlags.Invert),
        new("rt-0-res", Res, OptionArg.None),
        new("rt-0-addrs", Addrs, OptionArg.Required),
        new("rt-0-not-strict", NotStrict, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RtData d)
    {
        switch (option.Id)
        {
            case Type:
                d.RtType = (uint)XtParse.UIntOption(argument!, 0, uint.MaxValue, Name, "rt-type");
                d.HasType = true;
                if (invert) d.InvType = true;
                break;
            case Segs:
                {
                    var (a, b, n) = XtParse.UIntRange(argument!, uint.MaxValue, Name, "rt-segsleft");
                    d.SegsLeftMin = (uint)a;
                    d.SegsLeftMax = n == 1 ? (uint)a : (uint)b;
                    d.HasSegsLeft = true;
                    if (invert) d.InvSegsLeft = true;
                    break;
                }
            case Len:
                d.HeaderLength = (uint)XtParse.UIntOption(argument!, 0, uint.MaxValue, Name, "rt-len");
                d.HasLength = true;
                if (invert) d.InvLength = true;
                break;
            case Res:
                if (!d.HasType || d.RtType != 0 || d.InvType) throw ctx.Error("`--rt-type 0' required before `--rt-0-res'");
                d.Reserved = true;
                break;
            case Addrs:
                if (!d.HasType || d.RtType != 0 || d.InvType) throw ctx.Error("`--rt-type 0' required before `--rt-0-addrs'");
                ParseAddresses(argument!, d);
                d.HasAddresses = true;
                break;
            default:
                if (!d.HasAddresses) throw ctx.Error("`--rt-0-addr ...' required before `--rt-0-not-strict'");
                d.NotStrict = true;
                break;
        }
    }

    private static void ParseAddresses(string text, RtData d)
    {
        string[] items = text.Split(',');
        int i = 0;
        for (; i < items.Length && i < RtData.MaxAddresses; i++)
        {
            if (!IpNet.TryParseV6Numeric(items[i], out UInt128 a)) throw XtablesException.Param($"bad address: {items[i]}");
            d.Addresses[i] = a;
        }
        if (i < items.Length) throw XtablesException.Param("too many addresses specified");
        d.AddressCount = i;
    }

    private static void AppendAddresses(StringBuilder sb, RtData d)
    {
        for (int i = 0; i < d.AddressCount; i++)
        {
            sb.Append(i == 0 ? ' ' : ',').Append(IpNet.FormatAddress(d.Addresses[i], IpFamily.V6));
        }
    }

    protected override void Save(StringBuilder sb, RtData d, IpFamily family)
    {
        if (d.HasType) sb.Append(d.InvType ? " !" : string.Empty).Append(" --rt-type ").Append(XtParse.Dec(d.RtType));
        if (!(d.SegsLeftMin == 0 && d.SegsLeftMax == uint.MaxValue))
        {
            sb.Append(d.InvSegsLeft ? " !" : string.Empty).Append(" --rt-segsleft ").Append(XtParse.Dec(d.SegsLeftMin));
            if (d.SegsLeftMin != d.SegsLeftMax) sb.Append(':').Append(XtParse.Dec(d.SegsLeftMax));
        }
        if (d.HasLength) sb.Append(d.InvLength ? " !" : string.Empty).Append(" --rt-len ").Append(XtParse.Dec(d.HeaderLength));
        if (d.Reserved) sb.Append(" --rt-0-res");
        if (d.HasAddresses) sb.Append(" --rt-0-addrs");
        AppendAddresses(sb, d);
        if (d.NotStrict) sb.Append(" --rt-0-not-strict");
    }

    protected override void Print(StringBuilder sb, RtData d, IpFamily family, bool numeric)
    {
        sb.Append(" rt");
        if (d.HasType) sb.Append(" type:").Append(d.InvType ? "!" : string.Empty).Append(((int)d.RtType).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (d.SegsLeftMin != 0 || d.SegsLeftMax != uint.MaxValue || d.InvSegsLeft)
        {
            string inv = d.InvSegsLeft ? "!" : string.Empty;
            if (d.SegsLeftMin == d.SegsLeftMax) sb.Append(" segsleft:").Append(inv).Append(XtParse.Dec(d.SegsLeftMin));
            else sb.Append(" segslefts:").Append(inv).Append(XtParse.Dec(d.SegsLeftMin)).Append(':').Append(XtParse.Dec(d.SegsLeftMax));
        }
        if (d.HasLength) sb.Append(" length:").Append(d.InvLength ? "!" : string.Empty).Append(XtParse.Dec(d.HeaderLength));
        if (d.Reserved) sb.Append(" reserved");
        if (d.HasAddresses) sb.Append(" 0-addrs");
        AppendAddresses(sb, d);
        if (d.NotStrict) sb.Append(" 0-not-strict");
    }

    /// <summary>
    /// Evaluates the match (ip6t_rt.c): finds the routing header; type, segments left, length and --rt-0-res
    /// (the 32 bits after the fixed part zero), then the type-0 address list: strict (exactly these, in order,
    /// and no others) or with --rt-0-not-strict (these in order, others between allowed).
    /// </summary>
    protected override bool Match(PacketContext ctx, RtData d)
    {
        Packet p = ctx.Packet;
        if (!HeaderReads.FindIpv6Header(p, IpProtocol.Routing, out int ptr, out bool bad))
        {
            ctx.HotDrop = bad;
            return false;
        }
        if (!HeaderReads.TryRead(p, ptr, 4, out ReadOnlySpan<byte> rh)) return HeaderReads.Drop(ctx);
        int hdrlen = (rh[1] + 1) << 3;
        if (p.Bytes.Length - ptr < hdrlen) return false;
        bool ret = (rh[3] >= d.SegsLeftMin && rh[3] <= d.SegsLeftMax) != d.InvSegsLeft
            && (!d.HasLength || (d.HeaderLength == (uint)hdrlen) != d.InvLength)
            && (!d.HasType || (d.RtType == rh[2]) != d.InvType);
        if (ret && d.Reserved)
            ret = HeaderReads.TryRead(p, ptr + 4, 4, out ReadOnlySpan<byte> rp) && HeaderReads.U32(rp, 0) == 0;
        if (!d.HasAddresses) return ret;
        int slots = (hdrlen - 8) / 16;
        if (d.AddressCount > slots) return false;
        if (d.NotStrict)
        {
            int i = 0;
            for (int temp = 0; temp < slots && i < d.AddressCount; temp++)
            {
                if (Address(p, ptr + 8 + temp * 16) == d.Addresses[i]) i++;
            }
            return i == d.AddressCount && ret;
        }
        int k;
        for (k = 0; k < d.AddressCount; k++)
        {
            if (Address(p, ptr + 8 + k * 16) != d.Addresses[k]) break;
        }
        return k == d.AddressCount && k == slots && ret;
    }

    private static UInt128 Address(Packet p, int at) => System.Buffers.Binary.BinaryPrimitives.ReadUInt128BigEndian(p.Bytes.AsSpan(at, 16));
}
