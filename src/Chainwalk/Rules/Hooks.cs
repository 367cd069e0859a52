namespace Chainwalk.Rules;

/// <summary>The five netfilter hooks, in the order their built-in chains are printed.</summary>
public enum Hook : byte
{
    Prerouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    Postrouting = 4,
}

/// <summary>A set of hooks, as the kernel's <c>hook_mask</c> (bit i = <see cref="Hook"/> i).</summary>
[Flags]
public enum HookMask : byte
{
    None = 0,
    Prerouting = 1 << Hook.Prerouting,
    Input = 1 << Hook.Input,
    Forward = 1 << Hook.Forward,
    Output = 1 << Hook.Output,
    Postrouting = 1 << Hook.Postrouting,
    All = Prerouting | Input | Forward | Output | Postrouting,
}

public static class HookNames
{
    public static string ChainName(this Hook hook) => hook switch
    {
        Hook.Prerouting => "PREROUTING",
        Hook.Input => "INPUT",
        Hook.Forward => "FORWARD",
        Hook.Output => "OUTPUT",
        _ => "POSTROUTING",
    };

    public static bool TryParse(string chain, out Hook hook)
    {
        switch (chain)
        {
            case "PREROUTING": hook = Hook.Prerouting; return true;
            case "INPUT": hook = Hook.Input; return true;
            case "FORWARD": hook = Hook.Forward; return true;
            case "OUTPUT": hook = Hook.Output; return true;
            case "POSTROUTING": hook = Hook.Postrouting; return true;
            default: hook = default; return false;
        }
    }

    public static HookMask Mask(this Hook hook) => (HookMask)(1 << (int)hook);
}

/// <summary>
/// The iptables tables and the hooks their built-in chains sit on. <see cref="SaveOrder"/> is the order
/// iptables-nft 1.8.9 prints tables in (its internal table enum: mangle, security, raw, filter, nat).
/// </summary>
public sealed class TableInfo
{
    public string Name { get; }
    public IReadOnlyList<Hook> Hooks { get; }
    public HookMask HookMask { get; }

    private TableInfo(string name, params Hook[] hooks)
    {
        Name = name;
        Hooks = hooks;
        foreach (Hook h in hooks) HookMask |= h.Mask();
    }

    public static readonly TableInfo Mangle = new("mangle", Hook.Prerouting, Hook.Input, Hook.Forward, Hook.Output, Hook.Postrouting);
    public static readonly TableInfo Security = new("security", Hook.Input, Hook.Forward, Hook.Output);
    public static readonly TableInfo Raw = new("raw", Hook.Prerouting, Hook.Output);
    public static readonly TableInfo Filter = new("filter", Hook.Input, Hook.Forward, Hook.Output);
    public static readonly TableInfo Nat = new("nat", Hook.Prerouting, Hook.Input, Hook.Output, Hook.Postrouting);

    private static readonly TableInfo[] SaveOrderArray = [Mangle, Security, Raw, Filter, Nat];

    public static IReadOnlyList<TableInfo> SaveOrder => SaveOrderArray;

    public static TableInfo? Find(string name)
    {
        foreach (TableInfo t in SaveOrderArray)
        {
            if (t.Name == name) return t;
        }
        return null;
    }

    public bool HasBuiltin(string chain) => HookNames.TryParse(chain, out Hook h) && (HookMask & h.Mask()) != 0;

    public override string ToString() => Name;
}
