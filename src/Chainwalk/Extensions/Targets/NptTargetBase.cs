using System.Text;
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
}
