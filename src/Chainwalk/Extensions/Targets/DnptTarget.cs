using Chainwalk.Rules;

namespace Chainwalk.Extensions.Targets;

/// <summary><c>-j DNPT --src-pfx P/L --dst-pfx P/L</c>: destination prefix translation; mangle PREROUTING and OUTPUT.</summary>
public sealed class DnptTarget : NptTargetBase
{
    public override string Name => "DNPT";

    public override HookMask Hooks => HookMask.Prerouting | HookMask.Output;

    protected override bool Source => false;
}
