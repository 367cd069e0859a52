using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j CLASSIFY</c> (struct xt_classify_target_info).</summary>
public sealed class ClassifyData : ExtensionData
{
    /// <summary>The tc class handle: major in the high 16 bits, minor in the low 16 bits.</summary>
    public uint Priority;
}

/// <summary>
/// <c>-j CLASSIFY --set-class MAJOR:MINOR</c> (libxt_CLASSIFY.c, xt_CLASSIFY.c): hex numbers read with
/// sscanf("%x:%x"), each cut to 16 bits; FORWARD, OUTPUT and POSTROUTING only.
/// </summary>
public sealed class ClassifyTarget : XtExtension<ClassifyData>
{
    public override string Name => "CLASSIFY";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override HookMask Hooks => HookMask.Forward | HookMask.Output | HookMask.Postrouting;

    public override IReadOnlyList<XtOption> Options { get; } = [new("set-class", 0, OptionArg.Required, OptFlags.Mandatory)];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ClassifyData d)
    {
        string arg = argument!;
        int pos = 0;
        if (!XtParse.ScanHex(arg, ref pos, out uint major) || pos >= arg.Length || arg[pos] != ':')
            throw ctx.Error($"Bad class value \"{arg}\"");
        pos++;
        if (!XtParse.ScanHex(arg, ref pos, out uint minor)) throw ctx.Error($"Bad class value \"{arg}\"");
        d.Priority = ((major << 16) & 0xFFFF0000u) | (minor & 0xFFFFu);
    }

    private static string X(uint v, string fmt) => v.ToString(fmt, CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, ClassifyData d, IpFamily family) =>
        sb.Append(" --set-class ").Append(X(d.Priority >> 16, "x4")).Append(':').Append(X(d.Priority & 0xFFFF, "x4"));

    protected override void Print(StringBuilder sb, ClassifyData d, IpFamily family, bool numeric) =>
        sb.Append(" CLASSIFY set ").Append(X(d.Priority >> 16, "x")).Append(':').Append(X(d.Priority & 0xFFFF, "x"));

    /// <summary>xt_CLASSIFY.c: skb->priority = the class handle.</summary>
    protected override Verdict Execute(PacketContext ctx, ClassifyData data)
    {
        ctx.Skb.Priority = data.Priority;
        return Verdict.Continue;
    }
}
