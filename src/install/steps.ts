// What install and uninstall report: one step per file, tree or directory they looked at.

export type Action = 'wrote' | 'unchanged' | 'removed' | 'kept';

export interface Step {
  action: Action;
  /** A directory (a copy of the program, or one install created) ends in '/'. */
  path: string;
  why?: string;
}
