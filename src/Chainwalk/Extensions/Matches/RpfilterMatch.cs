using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>The XT_RPFILTER_* flags.</summary>
[Flags]
public enum RpfilterFlags : byte
{
    None = 0,
    Loose = 1,
    ValidMark = 2,
    AcceptLocal = 4,
    Invert = 8,
}

/// <summary>Options of <c>-m rpfilter</c> (struct xt_rpfilter_info).</summary>
public sealed class RpfilterData : ExtensionData
{
    public RpfilterFlags Flags;
}

/// <summary><c>-m rpfilter</c> (libxt_rpfilter.c, ipt_rpfilter.c/ip6t_rpfilter.c): raw or mangle PREROUTING only.</summary>
public sealed class RpfilterMatch : XtExtension<RpfilterData>
{
    private const int OLoose = 0, OValidMark = 1, OAcceptLocal = 2, OInvert = 3;

    public override string Name => "rpfilter";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle", "raw"];

    public override HookMask Hooks => HookMask.Prerouting;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("loose", OLoose, OptionArg.None),
        new("validmark", OValidMark, OptionArg.None),
        new("accept-local", OAcceptLocal, OptionArg.None),
        new("invert", OInvert, OptionArg.None),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RpfilterData d)
    {
        d.Flags |= option.Id switch
        {
            OLoose => RpfilterFlags.Loose,
            OValidMark => RpfilterFlags.ValidMark,
            OAcceptLocal => RpfilterFlags.AcceptLocal,
            _ => RpfilterFlags.Invert,
        };
    }

    private static void Append(StringBuilder sb, RpfilterData d, string prefix)
    {
        if ((d.Flags & RpfilterFlags.Loose) != 0) sb.Append(' ').Append(prefix).Append("loose");
        if ((d.Flags & RpfilterFlags.ValidMark) != 0) sb.Append(' ').Append(prefix).Append("validmark");
        if ((d.Flags & RpfilterFlags.AcceptLocal) != 0) sb.Append(' ').Append(prefix).Append("accept-local");
        if ((d.Flags & RpfilterFlags.Invert) != 0) sb.Append(' ').Append(prefix).Append("invert");
    }

    protected override void Save(StringBuilder sb, RpfilterData d, IpFamily family) => Append(sb, d, "--");

    protected override void Print(StringBuilder sb, RpfilterData d, IpFamily family, bool numeric)
    {
        sb.Append(" rpfilter");
        Append(sb, d, string.Empty);
    }
}
