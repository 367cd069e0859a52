using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary><c>-m eui64</c> has no options.</summary>
public sealed class Eui64Data : ExtensionData
{
}

/// <summary>
/// <c>-m eui64</c> (libip6t_eui64.c, ip6t_eui64.c): the source address's interface id is the EUI-64 of the
/// source MAC. No options, nothing printed; the kernel allows it only in PREROUTING, INPUT and FORWARD.
/// </summary>
public sealed class Eui64Match : XtExtension<Eui64Data>
{
    public override string Name => "eui64";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V6;

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Input | HookMask.Forward;

    public override IReadOnlyList<XtOption> Options { get; } = [];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, Eui64Data d)
    {
    }

    protected override void Save(StringBuilder sb, Eui64Data d, IpFamily family)
    {
    }

    protected override void Print(StringBuilder sb, Eui64Data d, IpFamily family, bool numeric)
    {
    }
}
